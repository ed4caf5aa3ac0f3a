//! Mount decisions, pops and due reports through the bridge: how work is handed out when both
//! sides hold it.
//!
//! - `next_mount`: the authoritative side decides and records the mount under its own scheduling
//!   lock; the other side records the same mount under the same id (`open_mount`, which moves its
//!   id allocator past it, so that side hands out no id already used once it becomes
//!   authoritative). In shadow and live, on sampled calls, the other side's mount info for the
//!   same "now" is read concurrently and the same decision function runs on it: a different
//!   choice or different mount info (still different when both are read again) is a divergence
//!   carrying both sides' mount info (the inputs `explain` shows) side by side.
//! - `pop_jobs`: the authoritative side pops; the other side claims the same jobs by id
//!   (`claim_jobs`). A job it cannot give is a divergence naming the job; in shadow and live the
//!   jobs' contents are compared too.
//!
//! Invariants, while processes see a stage change at different moments (authority flips
//! included) and mirrored writes land on the two sides at slightly different moments:
//! - **One mount per id**: a mount id the other side already gives to another mount ends the new
//!   mount unused (the drive asks again).
//! - **One mount per job**: a popped job the other side shows held by another mount goes back to
//!   its queue and is not handed out.
//! - **Nothing handed out from one side only** once both sides hold all the work (the other side
//!   is legacy, or the backfill has completed): a job the other side does not hold yet is put back,
//!   a report not yet due there is left for later. Before that, legacy's answer stands alone
//!   (the target may lack what predates its copy). When the other side fails or does not answer
//!   in time, the authoritative answer stands: callers are never held up by it.
//!
//! These events are divergences under their own operation names, matched by the ignore rules
//! [`fence_rule`] and [`in_flight_rule`] (counted apart, never as mismatches).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde_json::json;
use tapesched_scheduler::clock::Timestamp;
use tapesched_scheduler::db::{DecideFn, MountInfo, MountJob, MountSpec, ReportJob, SchedulerDb, StayRouter};
use tapesched_scheduler::state::{JobPlace, StateItem, StateKey};
use tapesched_scheduler::types::{JobId, MountId, RequestId};
use tapesched_scheduler::{ErrorKind, Result};

use crate::db::{timed, BridgeDb, Route};
use crate::divergence::{Answer, Concern, IgnoreRule};

/// The operation name of a mount ended unused because its id was taken on the other side.
pub const FENCE_MOUNT: &str = "next_mount.fence";
/// The operation name of popped jobs put back because another mount held them on the other side.
pub const FENCE_POP: &str = "pop_jobs.fence";

/// The operation name of popped jobs put back because the other side does not hold them (yet),
/// once both sides hold all the work.
pub const HELD_BACK_POP: &str = "pop_jobs.held_back";
/// The operation name of due reports left for later because the other side does not have them
/// due (yet), once both sides hold all the work.
pub const HELD_BACK_REPORTS: &str = "reports_due.held_back";

/// The ignore rule of work held back until both sides hold it: another process's mirrored write
/// lands on the two sides at slightly different moments, and work that has reached one side only
/// waits for the other (a job or report lost on one side is held back every time: verify finds
/// it and repair ends it). Counted as ignored under `in-flight-mirror`, never as a mismatch.
pub fn in_flight_rule() -> IgnoreRule {
    IgnoreRule::new(
        "in-flight-mirror",
        "work that has reached one side only, held back until both sides hold it",
        |d| d.op == HELD_BACK_POP || d.op == HELD_BACK_REPORTS,
    )
}

/// The ignore rule of the authority-flip fence: while a stage change reaches the processes one
/// by one, two of them may take the same mount id or job on different sides; the fence undoes
/// the loser's part (a mount ended unused, jobs back to their queue). These are expected and
/// safe, so they are counted as ignored under `authority-flip-fence`, never as mismatches.
pub fn fence_rule() -> IgnoreRule {
    IgnoreRule::new(
        "authority-flip-fence",
        "a mount id or job taken on the other side by a process in the other authority, undone by the fence",
        |d| d.op == FENCE_MOUNT || d.op == FENCE_POP,
    )
}

impl BridgeDb {
    pub(crate) async fn next_mount_op(
        &self,
        logical_library: &str,
        now: Timestamp,
        decide: &DecideFn<'_>,
    ) -> Result<Option<(MountId, MountSpec)>> {
        const OP: &str = "next_mount";
        let route = self.route(Some(now)).await?;
        let Some(other) = route.other else { return route.auth.next_mount(logical_library, now, decide).await };
        let compare = route.stage.compares_reads() && self.log.sample(OP);
        // The mount info the authoritative side decided on and what the decision chose on it,
        // kept when comparing.
        let seen: Mutex<Option<(MountInfo, Option<MountSpec>)>> = Mutex::new(None);
        let watched = |info: &MountInfo| {
            let choice = decide(info);
            if compare {
                *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some((info.clone(), choice.clone()));
            }
            choice
        };
        let decided = timed(route.auth.next_mount(logical_library, now, &watched));
        let ((chosen, la), other_info) = if compare {
            let (d, o) = tokio::join!(decided, timed(self.bounded(other.mount_info(now))));
            (d, Some(o))
        } else {
            (decided.await, None)
        };
        self.log.answered(OP, route.authority, la, chosen.is_err());

        // The other side records the mount the authoritative side opened, under its id. If that
        // id is taken there by another mount, a process that sees the other side as authoritative
        // (a stage change on its way through the processes) opened a mount under it: this one is
        // ended unused and the drive told to ask again (the fence of mount ids at an authority
        // flip), so no id ever names two mounts.
        if let Ok(Some((id, spec))) = &chosen {
            crate::failpoint::hit(crate::failpoint::AFTER_AUTHORITY_WRITE);
            if !self.open_on_other(&route, other, *id, spec).await {
                route.auth.end_mount(*id, now, &StayRouter).await?;
                return Ok(None);
            }
        }

        let (Some((other_info, lo)), Ok(auth_choice)) = (other_info, &chosen) else { return chosen };
        self.log.answered(OP, route.authority.other(), lo, other_info.is_err());
        let auth_spec = auth_choice.as_ref().map(|(_, s)| s);
        let (auth_info, auth_decided) = match seen.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some((info, choice)) => (Some(info), choice),
            None => (None, None),
        };
        let mut concerns = vec![Concern::Library(logical_library.to_string())];
        if let Some((id, spec)) = auth_choice {
            concerns.extend([Concern::Mount(*id), Concern::Drive(spec.drive.clone())]);
        }
        let side = |choice: Option<&MountSpec>, info: Option<&MountInfo>| {
            Answer::Value(json!({"chosen": choice, "mount_info": info}))
        };
        match other_info {
            Err(e) => {
                let note = format!("the {} side could not give its mount info", route.authority.other());
                self.diverge(
                    &route,
                    OP,
                    concerns,
                    side(auth_spec, auth_info.as_ref()),
                    Answer::of::<()>(&Err(e)),
                    Some(note),
                );
            }
            Ok(info) => {
                let same_info = auth_info.as_ref() == Some(&info);
                // The decision is a pure function of the mount info (and of the drive, catalogue
                // and clock, the same for both): on equal mount info it is what the decision chose
                // on the authoritative side (compared below with the mount that side recorded),
                // and is decided again only on different mount info.
                let other_choice = if same_info { auth_decided } else { decide(&info) };
                if same_info && auth_spec == other_choice.as_ref() {
                    self.log.matched(OP);
                } else if self.same_on_reread(&route, other, now, decide).await {
                    // Another process's mirrored write had reached one side only: both sides,
                    // read again, hold the same mount info and decide the same.
                    self.log.matched(OP);
                } else {
                    let note = match (same_info, auth_spec == other_choice.as_ref()) {
                        (false, true) => "same mount chosen from different mount info",
                        (true, false) => "different mount chosen from the same mount info",
                        _ => "different mount chosen from different mount info",
                    };
                    self.diverge(
                        &route,
                        OP,
                        concerns,
                        side(auth_spec, auth_info.as_ref()),
                        side(other_choice.as_ref(), Some(&info)),
                        Some(note.to_string()),
                    );
                }
            }
        }
        chosen
    }

    pub(crate) async fn pop_jobs_op(
        &self,
        mount: MountId,
        max_files: u64,
        max_bytes: u64,
        now: Timestamp,
    ) -> Result<Vec<MountJob>> {
        const OP: &str = "pop_jobs";
        let route = self.route(Some(now)).await?;
        let Some(other) = route.other else { return route.auth.pop_jobs(mount, max_files, max_bytes, now).await };
        let (popped, la) = timed(route.auth.pop_jobs(mount, max_files, max_bytes, now)).await;
        self.log.answered(OP, route.authority, la, popped.is_err());
        let Ok(jobs) = &popped else { return popped };
        if jobs.is_empty() {
            return popped;
        }
        self.log.count_call(OP);
        let ids: Vec<JobId> = jobs.iter().map(MountJob::id).collect();
        crate::failpoint::hit(crate::failpoint::AFTER_AUTHORITY_WRITE);
        let (claimed, lo) = timed(self.bounded(other.claim_jobs(mount, &ids, now))).await;
        self.log.answered(OP, route.authority.other(), lo, claimed.is_err());
        let concerns = |jobs: &[JobId]| {
            std::iter::once(Concern::Mount(mount)).chain(jobs.iter().copied().map(Concern::Job)).collect()
        };
        let other_side = route.authority.other();
        let claimed = match claimed {
            Ok(c) => c,
            Err(e) => {
                let note = format!("the {other_side} side could not claim the {} jobs popped", ids.len());
                self.diverge(&route, OP, concerns(&ids), Answer::value(&ids), Answer::of::<()>(&Err(e)), Some(note));
                return popped;
            }
        };
        let given: BTreeMap<JobId, &MountJob> = claimed.iter().map(|j| (j.id(), j)).collect();
        let missing: Vec<JobId> = ids.iter().copied().filter(|id| !given.contains_key(id)).collect();
        if !missing.is_empty() {
            let got: Vec<JobId> = claimed.iter().map(MountJob::id).collect();
            // A job another mount holds on the other side was popped there by a process that
            // sees that side as authoritative: it goes back to its queue here and is not handed
            // out (the fence of jobs at an authority flip: a job is given to one mount only).
            let elsewhere = self.held_elsewhere(other, mount, &missing).await;
            let lost: Vec<JobId> = missing.iter().copied().filter(|j| !elsewhere.contains(j)).collect();
            // Once both sides hold all the work, a job the other side lacks is one whose mirrored
            // write has not landed there yet (or was lost: verify finds it): it is held back until
            // both sides have it, so that no side keeps a queued copy of a job written elsewhere.
            let held_back: Vec<JobId> = if route.both_complete { lost.clone() } else { Vec::new() };
            if !lost.is_empty() && !route.both_complete {
                let note =
                    format!("the {other_side} side could not give {} of the {} jobs popped", lost.len(), ids.len());
                self.diverge(&route, OP, concerns(&lost), Answer::value(&ids), Answer::value(&got), Some(note));
            }
            let back: Vec<JobId> = elsewhere.iter().chain(&held_back).copied().collect();
            if back.is_empty() {
                return popped;
            }
            route.auth.requeue_jobs(mount, &back, now, &StayRouter).await?;
            if !held_back.is_empty() {
                let note = format!(
                    "the {other_side} side does not hold {} of the {} jobs popped (yet): back to their queue on the {} \
                     side until both sides hold them",
                    held_back.len(),
                    ids.len(),
                    route.authority
                );
                let (want, got) = (Answer::value(&ids), Answer::value(&got));
                self.diverge(&route, HELD_BACK_POP, concerns(&held_back), want, got, Some(note));
            }
            if !elsewhere.is_empty() {
                let note = format!(
                    "{} jobs are held by another mount on the {other_side} side: back to their queue on the {} side, \
                     not handed out",
                    elsewhere.len(),
                    route.authority
                );
                let (want, got) = (Answer::value(&ids), Answer::value(&got));
                self.diverge(&route, FENCE_POP, concerns(&elsewhere), want, got, Some(note));
            }
            return Ok(jobs.iter().filter(|j| !back.contains(&j.id())).cloned().collect());
        }
        if route.stage.compares_reads() && self.log.sample("pop_jobs.contents") {
            let differ: Vec<(&MountJob, &MountJob)> =
                jobs.iter().filter_map(|j| given.get(&j.id()).filter(|o| **o != j).map(|o| (j, *o))).collect();
            if differ.is_empty() {
                self.log.matched(OP);
            } else {
                let which: Vec<JobId> = differ.iter().map(|(j, _)| j.id()).collect();
                let (a, o): (Vec<&MountJob>, Vec<&MountJob>) = differ.into_iter().unzip();
                let note = format!("{} jobs differ between the two sides", which.len());
                self.diverge(&route, OP, concerns(&which), Answer::value(&a), Answer::value(&o), Some(note));
            }
        } else {
            self.log.matched(OP);
        }
        popped
    }

    /// Whether both sides, read again (after the pauses of `recheck_pauses`), give the same mount
    /// info and the same decision on it.
    async fn same_on_reread(
        &self,
        route: &Route<'_>,
        other: &dyn SchedulerDb,
        now: Timestamp,
        decide: &DecideFn<'_>,
    ) -> bool {
        for pause in self.recheck_pauses() {
            tokio::time::sleep(pause).await;
            let (a, o) = tokio::join!(route.auth.mount_info(now), self.bounded(other.mount_info(now)));
            if let (Ok(a), Ok(o)) = (a, o) {
                if a == o && decide(&a) == decide(&o) {
                    return true;
                }
            }
        }
        false
    }

    /// Of the reports the authoritative side has due, those the other side has due too, once
    /// both sides hold all the work: a report due on one side only is left for a later call
    /// (its mirrored write has not landed yet), so that it is never delivered while the other
    /// side could still make it due again. When the other side cannot be read, all of them.
    pub(crate) async fn due_on_both_sides(&self, due: Vec<ReportJob>, now: Timestamp) -> Result<Vec<ReportJob>> {
        let route = self.route(Some(now)).await?;
        let Some(other) = route.other else { return Ok(due) };
        if due.is_empty() || !route.both_complete {
            return Ok(due);
        }
        let mut keys: Vec<StateKey> = due.iter().map(|r| StateKey::of_request(r.request)).collect();
        keys.sort();
        keys.dedup();
        let Ok(items) = self.bounded(other.read_state(&keys)).await else { return Ok(due) };
        let on_other: BTreeSet<RequestId> = items
            .iter()
            .filter_map(|item| match item {
                StateItem::Archive { request, places } if places.contains(&JobPlace::Report) => Some(request.id()),
                StateItem::Retrieve { request, place: JobPlace::Report } => Some(request.id()),
                _ => None,
            })
            .collect();
        let (both, later): (Vec<ReportJob>, Vec<ReportJob>) =
            due.into_iter().partition(|r| on_other.contains(&r.request));
        if !later.is_empty() {
            let ids: Vec<RequestId> = later.iter().map(|r| r.request).collect();
            let note = format!(
                "{} reports due on the {} side are not due on the {} side (yet): left for later",
                later.len(),
                route.authority,
                route.authority.other()
            );
            let concerns = ids.iter().copied().map(Concern::Request).collect();
            self.diverge(&route, HELD_BACK_REPORTS, concerns, Answer::value(&ids), Answer::NotAsked, Some(note));
        }
        Ok(both)
    }

    /// Of `jobs`, those the non-authoritative side shows held by a mount other than `mount`
    /// (none when it cannot be read: the authoritative side's answer stands).
    async fn held_elsewhere(&self, other: &dyn SchedulerDb, mount: MountId, jobs: &[JobId]) -> Vec<JobId> {
        let mut keys: Vec<StateKey> = jobs.iter().map(|j| StateKey::of_request(j.request)).collect();
        keys.sort();
        keys.dedup();
        let Ok(items) = self.bounded(other.read_state(&keys)).await else { return Vec::new() };
        let mut held: BTreeMap<JobId, MountId> = BTreeMap::new();
        for item in &items {
            match item {
                StateItem::Archive { request, places } => {
                    for (job, place) in request.jobs.iter().zip(places) {
                        if let JobPlace::Held { mount: m, .. } = place {
                            held.insert(JobId { request: request.id(), copy_nb: job.copy_nb }, *m);
                        }
                    }
                }
                StateItem::Retrieve { request, place: JobPlace::Held { mount: m, .. } } => {
                    let copy_nb = request.active_copy().map_or(0, |c| c.copy_nb);
                    held.insert(JobId { request: request.id(), copy_nb }, *m);
                }
                _ => {}
            }
        }
        jobs.iter().copied().filter(|j| held.get(j).is_some_and(|m| *m != mount)).collect()
    }

    /// Records the mount `id` on the non-authoritative side; false when that side holds another
    /// mount under the id (recorded as a fence divergence). Any other failure is a divergence and
    /// true: the authoritative side's mount stands.
    async fn open_on_other(&self, route: &Route<'_>, other: &dyn SchedulerDb, id: MountId, spec: &MountSpec) -> bool {
        const OP: &str = "open_mount";
        self.log.count_call(OP);
        let (opened, lo) = timed(self.bounded(other.open_mount(id, spec, route.now))).await;
        self.log.answered(OP, route.authority.other(), lo, opened.is_err());
        let concerns = || vec![Concern::Mount(id), Concern::Drive(spec.drive.clone())];
        let other_side = route.authority.other();
        match opened {
            Ok(()) => {
                self.log.matched(OP);
                true
            }
            Err(e) if e.kind == ErrorKind::Conflict => {
                // The same mount already recorded there (an operation retried) is no conflict.
                let there = self.bounded(other.read_state(&[StateKey::Mount(id)])).await;
                if let Ok([StateItem::Mount { spec: held, .. }]) = there.as_deref() {
                    if held == spec {
                        self.log.matched(OP);
                        return true;
                    }
                }
                let note = format!(
                    "mount {id} is taken on the {other_side} side by another mount: ended unused on the {} side, \
                     the drive asks again",
                    route.authority
                );
                self.diverge(
                    route,
                    FENCE_MOUNT,
                    concerns(),
                    Answer::value(spec),
                    Answer::of::<()>(&Err(e)),
                    Some(note),
                );
                false
            }
            Err(e) => {
                let note = format!("the {other_side} side could not record the mount");
                self.diverge(route, OP, concerns(), Answer::value(spec), Answer::of::<()>(&Err(e)), Some(note));
                true
            }
        }
    }
}

//! Mount decisions and pops through the bridge.
//!
//! - `next_mount`: the authoritative side decides and records the mount under its own scheduling
//!   lock; the other side records the same mount under the same id (`open_mount`, which moves its
//!   id allocator past it, so that side hands out no id already used once it becomes
//!   authoritative). In shadow and live, on sampled calls, the other side's mount info for the
//!   same "now" is read concurrently and the same decision function runs on it: a different
//!   choice or different mount info is a divergence carrying both sides' mount info (the inputs
//!   `explain` shows) side by side.
//! - `pop_jobs`: the authoritative side pops; the other side claims the same jobs by id
//!   (`claim_jobs`). A job it cannot give is a divergence naming the job; in shadow and live the
//!   jobs' contents are compared too.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::json;
use tapesched_scheduler::clock::Timestamp;
use tapesched_scheduler::db::{DecideFn, MountInfo, MountJob, MountSpec};
use tapesched_scheduler::types::{JobId, MountId};
use tapesched_scheduler::Result;

use crate::db::{timed, BridgeDb};
use crate::divergence::{Answer, Concern};

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
        // The mount info the authoritative side decided on, kept when comparing.
        let seen: Mutex<Option<MountInfo>> = Mutex::new(None);
        let watched = |info: &MountInfo| {
            if compare {
                *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(info.clone());
            }
            decide(info)
        };
        let decided = timed(route.auth.next_mount(logical_library, now, &watched));
        let ((chosen, la), other_info) = if compare {
            let (d, o) = tokio::join!(decided, timed(self.bounded(other.mount_info(now))));
            (d, Some(o))
        } else {
            (decided.await, None)
        };
        self.log.answered(OP, route.authority, la, chosen.is_err());

        // The other side records the mount the authoritative side opened, under its id.
        if let Ok(Some((id, spec))) = &chosen {
            let concerns = || vec![Concern::Mount(*id), Concern::Drive(spec.drive.clone())];
            self.mirror(&route, "open_mount", concerns, async { Ok(()) }, other.open_mount(*id, spec, now)).await.ok();
        }

        let (Some((other_info, lo)), Ok(auth_choice)) = (other_info, &chosen) else { return chosen };
        self.log.answered(OP, route.authority.other(), lo, other_info.is_err());
        let auth_spec = auth_choice.as_ref().map(|(_, s)| s);
        let auth_info = seen.into_inner().unwrap_or_else(|p| p.into_inner());
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
                let other_choice = decide(&info);
                let same_info = auth_info.as_ref() == Some(&info);
                if same_info && auth_spec == other_choice.as_ref() {
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
            let note =
                format!("the {other_side} side could not give {} of the {} jobs popped", missing.len(), ids.len());
            self.diverge(&route, OP, concerns(&missing), Answer::value(&ids), Answer::value(&got), Some(note));
            return popped;
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
}

//! The mount-decision data set both benchmarks load, so that their decision latencies compare:
//! the same queues, the same jobs in them, the same catalogue, the same drive, the same arrivals
//! between two decisions.
//!
//! Half the jobs are archive jobs spread over the pools (`dp<p>`), half are retrieve jobs spread
//! over the VIDs (`DV<v>`, six digits); job `g` (counted from 1 in each half) goes to pool
//! `g % pools` or VID `g % vids`, has size `1 000 000 + g % 1000`, was created at `T0 + g % 3600`
//! and has policy `policy<g % 4>` with priority `g % 4` and minimum age 60. The Postgres loader
//! writes these rows with SQL and the Redis loader writes queue objects; both check, before any
//! timing, that the backend's mount information equals [`DecisionSet::expected_mount_info`].

use std::collections::BTreeMap;
use std::sync::Arc;

use std::time::Instant;

use anyhow::{bail, Context, Result};
use tapesched_scheduler::catalogue::CatalogueSnapshot;
use tapesched_scheduler::db::{DecideFn, MountInfo, PotentialMount, SchedulerDb};
use tapesched_scheduler::types::*;

use crate::measure::Samples;

/// Creation times count from here.
pub const T0: i64 = 1_700_000_000;
/// "Now" of every decision (two hours after `T0`: every job is old enough).
pub const NOW: i64 = T0 + 7200;
/// Archive requests that arrive (on as many pools) between two timed decisions.
pub const ARRIVALS: u64 = 100;
/// The drive asking for a mount.
pub const DRIVE: &str = "d0";
/// Its logical library.
pub const LIBRARY: &str = "lib";
/// Minimum request age recorded on every job.
pub const MIN_AGE: u64 = 60;

/// The size of a decision data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionSet {
    /// Tape pools (one archive queue each).
    pub pools: u64,
    /// VIDs (one retrieve queue each).
    pub vids: u64,
    /// Queued jobs, half archive, half retrieve.
    pub jobs: u64,
}

/// One queued job of the data set.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    /// Pool index (archive) or VID index (retrieve).
    pub queue: u64,
    /// Bytes.
    pub size: u64,
    /// Creation time.
    pub created_at: i64,
    /// Policy index: name `policy<i>`, priority `i`.
    pub policy: u64,
}

impl DecisionSet {
    /// The default data set: 1000 pools, 10 000 VIDs, 1 M jobs.
    pub const DEFAULT: DecisionSet = DecisionSet { pools: 1000, vids: 10_000, jobs: 1_000_000 };
    /// The `--scale` data set: 10 000 pools, 100 000 VIDs, 10 M jobs.
    pub const SCALE: DecisionSet = DecisionSet { pools: 10_000, vids: 100_000, jobs: 10_000_000 };
    /// The `--quick` data set.
    pub const QUICK: DecisionSet = DecisionSet { pools: 100, vids: 1000, jobs: 20_000 };

    /// Archive jobs: `1..=archive_jobs()`.
    pub fn archive_jobs(&self) -> u64 {
        self.jobs / 2
    }
    /// Retrieve jobs: `1..=retrieve_jobs()`.
    pub fn retrieve_jobs(&self) -> u64 {
        self.jobs - self.jobs / 2
    }
    /// Queues of the data set.
    pub fn queues(&self) -> u64 {
        self.pools + self.vids
    }
    /// The name of pool `p`.
    pub fn pool(p: u64) -> String {
        format!("dp{p}")
    }
    /// The name of VID `v`.
    pub fn vid(v: u64) -> String {
        format!("DV{v:06}")
    }
    /// The name of policy `i`.
    pub fn policy(i: u64) -> String {
        format!("policy{i}")
    }
    fn job(g: u64, queue: u64) -> Job {
        Job { queue, size: 1_000_000 + g % 1000, created_at: T0 + (g % 3600) as i64, policy: g % 4 }
    }
    /// Archive job `g` (archive file id `g`).
    pub fn archive_job(&self, g: u64) -> Job {
        Self::job(g, g % self.pools)
    }
    /// Retrieve job `g` (request id and fSeq `g`).
    pub fn retrieve_job(&self, g: u64) -> Job {
        Self::job(g, g % self.vids)
    }

    /// What a backend holding exactly this data set answers to `mount_info`, in canonical order.
    pub fn expected_mount_info(&self) -> MountInfo {
        #[derive(Default, Clone)]
        struct Acc {
            files: u64,
            bytes: u64,
            oldest: i64,
            youngest: i64,
            priority: u64,
            policies: [u64; 4],
        }
        let fold = |accs: &mut Vec<Acc>, j: Job| {
            let a = &mut accs[j.queue as usize];
            if a.files == 0 {
                (a.oldest, a.youngest) = (j.created_at, j.created_at);
            }
            a.files += 1;
            a.bytes += j.size;
            a.oldest = a.oldest.min(j.created_at);
            a.youngest = a.youngest.max(j.created_at);
            a.priority = a.priority.max(j.policy);
            a.policies[j.policy as usize] += 1;
        };
        let mut pools = vec![Acc::default(); self.pools as usize];
        for g in 1..=self.archive_jobs() {
            fold(&mut pools, self.archive_job(g));
        }
        let mut vids = vec![Acc::default(); self.vids as usize];
        for g in 1..=self.retrieve_jobs() {
            fold(&mut vids, self.retrieve_job(g));
        }
        let mount = |mount_type, tape_pool, vid, a: &Acc| PotentialMount {
            mount_type,
            tape_pool,
            vid,
            files_queued: a.files,
            bytes_queued: a.bytes,
            oldest_job_start: a.oldest,
            youngest_job_start: a.youngest,
            priority: a.priority,
            min_request_age: MIN_AGE,
            policy_counts: (0..4u64)
                .filter(|i| a.policies[*i as usize] > 0)
                .map(|i| (Self::policy(i), a.policies[i as usize]))
                .collect::<BTreeMap<_, _>>(),
            sleep: None,
        };
        let mut info = MountInfo::default();
        for (p, a) in pools.iter().enumerate().filter(|(_, a)| a.files > 0) {
            info.potential_mounts.push(Arc::new(mount(MountType::ArchiveForUser, Some(Self::pool(p as u64)), None, a)));
        }
        for (v, a) in vids.iter().enumerate().filter(|(_, a)| a.files > 0) {
            info.potential_mounts.push(Arc::new(mount(MountType::Retrieve, None, Some(Self::vid(v as u64)), a)));
        }
        info.sort();
        info
    }

    /// Fails with the first difference when `got` is not [`DecisionSet::expected_mount_info`].
    pub fn check(&self, got: &MountInfo) -> Result<()> {
        let want = self.expected_mount_info();
        if got.potential_mounts.len() != want.potential_mounts.len() {
            bail!(
                "the loaded data set has {} non-empty queues, expected {}",
                got.potential_mounts.len(),
                want.potential_mounts.len()
            );
        }
        for (g, w) in got.potential_mounts.iter().zip(&want.potential_mounts) {
            if g != w {
                bail!("the loaded data set differs from the expected one: got {g:?}, expected {w:?}");
            }
        }
        Ok(())
    }

    /// The `ARRIVALS` archive requests that arrive before a decision, the first with id
    /// `first_id`, one per pool (pools `first_id + 7k`: all different when there are at least
    /// `ARRIVALS` pools and 7 does not divide their number), created at `NOW`.
    pub fn arrivals(&self, first_id: u64) -> Vec<ArchiveRequest> {
        (0..ARRIVALS)
            .map(|k| {
                let id = first_id + k;
                let policy = id % 4;
                ArchiveRequest {
                    archive_file_id: id,
                    disk_instance: "eos".into(),
                    disk_file_id: format!("{id:#x}"),
                    requester: Requester { name: "user".into(), group: "group".into() },
                    storage_class: "sc".into(),
                    size: 1_000_000 + id % 1000,
                    created_at: NOW,
                    report_url: Some(format!("eos://instance/report/{id}")),
                    error_report_url: Some("eos://instance/error".into()),
                    policy: QueuedPolicy { name: Self::policy(policy), priority: policy, min_request_age: MIN_AGE },
                    jobs: vec![ArchiveJob::new(1, Self::pool((first_id + k * 7) % self.pools))],
                    report_decided: false,
                    repack: None,
                }
            })
            .collect()
    }

    /// The pools the arrivals of [`DecisionSet::arrivals`]`(first_id)` go to.
    pub fn arrival_pools(&self, first_id: u64) -> Vec<String> {
        (0..ARRIVALS).map(|k| Self::pool((first_id + k * 7) % self.pools)).collect()
    }

    /// A catalogue matching the data set: one VO, one library, `vids / pools` tapes per pool,
    /// the four policies, the drive, and the repack VO with its REPACKING tapes
    /// ([`crate::repack_decision`]).
    pub fn catalogue(&self) -> CatalogueSnapshot {
        let mut s = CatalogueSnapshot::default();
        s.disk_instances.insert("eos".into());
        s.vos.insert(
            "vo".into(),
            VirtualOrganization {
                name: "vo".into(),
                read_max_drives: 1000,
                write_max_drives: 1000,
                is_repack_vo: false,
                disk_instance: None,
            },
        );
        s.logical_libraries
            .insert(LIBRARY.into(), LogicalLibrary { name: LIBRARY.into(), disabled: false, physical_library: None });
        for p in 0..self.pools {
            let name = Self::pool(p);
            s.tape_pools.insert(name.clone(), TapePool { name, vo: "vo".into() });
        }
        for v in 0..self.vids {
            let vid = Self::vid(v);
            s.tapes.insert(
                vid.clone(),
                Tape {
                    vid,
                    tape_pool: Self::pool(v % self.pools),
                    logical_library: LIBRARY.into(),
                    capacity_bytes: 20_000_000_000_000,
                    data_on_tape_bytes: v,
                    last_fseq: 0,
                    full: false,
                    state: TapeState::Active,
                    state_reason: None,
                    media_type: "LTO9".into(),
                    vendor: None,
                },
            );
        }
        for i in 0..4 {
            let name = Self::policy(i);
            s.mount_policies.insert(
                name.clone(),
                MountPolicy {
                    name,
                    archive_priority: 1,
                    archive_min_request_age: 0,
                    retrieve_priority: 1,
                    retrieve_min_request_age: 0,
                },
            );
        }
        s.drives.insert(
            DRIVE.into(),
            DriveState {
                name: DRIVE.into(),
                logical_library: LIBRARY.into(),
                scheduler_backend: Some("default".into()),
                status: DriveStatus::Up,
                mount_type: None,
                vid: None,
                tape_pool: None,
                next_mount_type: None,
                next_vid: None,
                next_tape_pool: None,
                reason: None,
            },
        );
        crate::repack_decision::RepackWork::add_to_catalogue(self, &mut s);
        s
    }
}

/// A chosen mount in a few words (`Retrieve DV000123`, `ArchiveForUser dp7 on DV000007`), to
/// show that both backends chose the same first mount from the same data set.
pub fn describe(spec: &tapesched_scheduler::db::MountSpec) -> String {
    match spec.mount_type {
        MountType::Retrieve => format!("{:?} {}", spec.mount_type, spec.vid),
        t => format!("{t:?} {} on {}", spec.tape_pool, spec.vid),
    }
}

/// Archive requests arriving between decisions: each call queues [`ARRIVALS`] requests of the data
/// set on 100 different pools through `frontend` (a second backend instance, as a frontend process
/// would queue them), untimed, and returns the first one's id.
pub struct Arrivals<'a> {
    frontend: &'a dyn SchedulerDb,
    set: DecisionSet,
    next_id: u64,
}

impl<'a> Arrivals<'a> {
    /// Arrivals after the data set's own jobs.
    pub fn new(frontend: &'a dyn SchedulerDb, set: DecisionSet) -> Self {
        Arrivals { frontend, set, next_id: set.jobs + 1 }
    }

    /// Queues the next [`ARRIVALS`] requests.
    pub async fn arrive(&mut self) -> Result<u64> {
        let first = self.next_id;
        self.next_id += ARRIVALS;
        for r in self.frontend.queue_archives(self.set.arrivals(first), NOW).await {
            r?;
        }
        Ok(first)
    }
}

/// What [`time_decisions`] measured.
pub struct TimedDecisions {
    /// The whole `next_mount`, right after the arrivals.
    pub whole: Samples,
    /// `mount_info` alone, in rounds of its own.
    pub read: Samples,
    /// `decide` alone on what that read returned.
    pub choose: Samples,
    /// The first chosen mount, described.
    pub first_choice: String,
}

/// The timed decisions both backends run: `samples` whole `next_mount` calls, each right after
/// the arrivals (so its catch-up is timed), then `samples` more timed in parts (read, choose).
pub async fn time_decisions(
    db: &dyn SchedulerDb,
    arrivals: &mut Arrivals<'_>,
    decide: &DecideFn<'_>,
    samples: usize,
) -> Result<TimedDecisions> {
    eprintln!("{samples} decisions (next_mount), {ARRIVALS} arrivals before each");
    let (mut whole, mut first_choice) = (Samples::default(), None);
    for _ in 0..samples {
        arrivals.arrive().await?;
        let t = Instant::now();
        let chosen = db.next_mount(LIBRARY, NOW, decide).await?;
        whole.push(t.elapsed());
        let (_, spec) = chosen.context("next_mount chose no mount")?;
        first_choice.get_or_insert_with(|| describe(&spec));
    }
    eprintln!("next_mount ms: {}", whole.json());

    eprintln!("{samples} decisions timed in parts (mount_info, choose)");
    let (mut read, mut choose) = (Samples::default(), Samples::default());
    for _ in 0..samples {
        arrivals.arrive().await?;
        let t = Instant::now();
        let info = db.mount_info(NOW).await?;
        read.push(t.elapsed());
        let t = Instant::now();
        let chosen = decide(&info);
        choose.push(t.elapsed());
        anyhow::ensure!(chosen.is_some(), "the decision chose no mount");
    }
    eprintln!("mount_info ms: {}, choose ms: {}", read.json(), choose.json());
    Ok(TimedDecisions { whole, read, choose, first_choice: first_choice.unwrap_or_default() })
}

//! User decisions with repack work queued beside the user jobs: the repack part of the decision
//! data set ([`crate::decision_set`]).
//!
//! The decision catalogue always has a repack VO and [`TAPES`] REPACKING tapes (`RV0000`...,
//! in pools `dp<t % pools>`), so both timed runs decide on the same catalogue; only the queued
//! work differs. After the first timed run (user jobs only), [`RepackWork::queue`] queues, through
//! the backend's own repack methods as a maintenance process would (a second instance of the
//! backend, so the deciding process catches up with it):
//!
//! - one repack request per REPACKING tape (queued, promoted, started: `queue_repack`,
//!   `update_repack`);
//! - `retrieves` retrieve subrequests spread over the tapes, in expansion passes of `batch`
//!   (`queue_repack_subrequests`), each one file of its tape by fSeq;
//! - `archives` ArchiveForRepack requests spread over [`POOLS`] pools, as processed recalls
//!   would make them (`repack_reports_processed`, batches of `batch`).
//!
//! Then the deciding process's mount information must hold exactly the same user mounts and
//! [`TAPES`] + [`POOLS`] more (one per tape and per pool, with their job counts) before the
//! decisions are timed again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use futures::StreamExt;
use serde_json::{json, Value};
use tapesched_scheduler::catalogue::CatalogueSnapshot;
use tapesched_scheduler::db::{MountInfo, PotentialMount, SchedulerDb};
use tapesched_scheduler::repack::*;
use tapesched_scheduler::types::*;

use crate::decision_set::{DecisionSet, LIBRARY, MIN_AGE, NOW, T0};
use crate::measure::{rate, ratio, Samples};

/// REPACKING tapes of the decision catalogue (each with a repack request once work is queued).
pub const TAPES: u64 = 50;
/// Pools the ArchiveForRepack jobs go to.
pub const POOLS: u64 = 50;
/// The repack VO.
pub const REPACK_VO: &str = "repack_vo";
/// Subrequest ids of the retrieves start above this (the data set's own ids are far below).
const RETRIEVE_BASE: u64 = 10_000_000_000;
/// Subrequest ids of the repack archives start above this.
const ARCHIVE_BASE: u64 = 20_000_000_000;
/// Passes or batches in flight while queueing.
const IN_FLIGHT: usize = 4;

/// How much repack work is queued beside the user jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepackWork {
    /// Retrieve subrequests, over [`TAPES`] tapes.
    pub retrieves: u64,
    /// ArchiveForRepack jobs, over [`POOLS`] pools.
    pub archives: u64,
    /// Subrequests per expansion pass, archive requests per processed batch.
    pub batch: u64,
}

impl RepackWork {
    /// The default: 500 000 + 500 000 (1 M repack jobs beside the 1 M user jobs).
    pub const DEFAULT: RepackWork = RepackWork { retrieves: 500_000, archives: 500_000, batch: 10_000 };
    /// `--quick`: 10 000 + 10 000.
    pub const QUICK: RepackWork = RepackWork { retrieves: 10_000, archives: 10_000, batch: 2_000 };

    /// The VID of REPACKING tape `t`.
    pub fn vid(t: u64) -> String {
        format!("RV{t:04}")
    }
    /// The pool of ArchiveForRepack queue `k`: spread over the data set's pools.
    pub fn pool(set: &DecisionSet, k: u64) -> String {
        DecisionSet::pool(k * set.pools / POOLS)
    }

    /// Adds the repack VO and the REPACKING tapes to the decision catalogue.
    pub fn add_to_catalogue(set: &DecisionSet, s: &mut CatalogueSnapshot) {
        s.vos.insert(
            REPACK_VO.into(),
            VirtualOrganization {
                name: REPACK_VO.into(),
                read_max_drives: 1000,
                write_max_drives: 1000,
                is_repack_vo: true,
                disk_instance: None,
            },
        );
        for t in 0..TAPES {
            let vid = Self::vid(t);
            s.tapes.insert(
                vid.clone(),
                Tape {
                    vid,
                    tape_pool: DecisionSet::pool(t % set.pools),
                    logical_library: LIBRARY.into(),
                    capacity_bytes: 20_000_000_000_000,
                    data_on_tape_bytes: 10_000_000_000_000,
                    last_fseq: 1_000_000,
                    full: true,
                    state: TapeState::Repacking,
                    state_reason: Some("repack benchmark".into()),
                    media_type: "LTO9".into(),
                    vendor: None,
                },
            );
        }
    }

    fn policy(g: u64) -> QueuedPolicy {
        QueuedPolicy { name: DecisionSet::policy(g % 4), priority: g % 4, min_request_age: MIN_AGE }
    }

    fn link(vid: &str, id: u64, fseq: u64, pool: String) -> RepackLink {
        RepackLink {
            vid: vid.into(),
            subrequest_id: id,
            fseq,
            disk_file_id: format!("{id:#x}"),
            storage_class: "sc".into(),
            buffer_file: buffer_file("root://buffer//repack", vid, fseq),
            archive_copies: vec![CopyRoute { copy_nb: 1, tape_pool: pool }],
            user_provided: false,
        }
    }

    /// Retrieve subrequest `g` (1-based): tape `g % TAPES`, fSeq `g`.
    fn retrieve(set: &DecisionSet, g: u64) -> RetrieveRequest {
        let (id, vid) = (RETRIEVE_BASE + g, Self::vid(g % TAPES));
        let link = Self::link(&vid, id, g, Self::pool(set, g % POOLS));
        RetrieveRequest {
            request_id: id,
            archive_file_id: id,
            disk_instance: "eos".into(),
            requester: Requester { name: "repack".into(), group: "repack".into() },
            size: 1_000_000 + g % 1000,
            dst_url: link.buffer_file.clone(),
            report_url: None,
            error_report_url: None,
            created_at: T0 + (g % 3600) as i64,
            activity: None,
            verify_only: false,
            disk_system: None,
            policy: Self::policy(g),
            copies: vec![RetrieveCopy {
                copy_nb: 1,
                vid: vid.clone(),
                fseq: g,
                block_id: g,
                retries: RetryCounters::default(),
            }],
            active_vid: vid,
            status: RetrieveStatus::ToTransfer,
            failure_reasons: vec![],
            repack: Some(link),
        }
    }

    /// Repack archive request `g` (1-based): pool `g % POOLS`, repack of tape `g % TAPES`.
    fn archive(set: &DecisionSet, g: u64) -> ArchiveRequest {
        let (id, vid, pool) = (ARCHIVE_BASE + g, Self::vid(g % TAPES), Self::pool(set, g % POOLS));
        let link = Self::link(&vid, id, g, pool.clone());
        ArchiveRequest {
            archive_file_id: id,
            disk_instance: "eos".into(),
            disk_file_id: link.disk_file_id.clone(),
            requester: Requester { name: "repack".into(), group: "repack".into() },
            storage_class: "sc".into(),
            size: 1_000_000 + g % 1000,
            created_at: T0 + (g % 3600) as i64,
            report_url: None,
            error_report_url: None,
            policy: Self::policy(g),
            jobs: vec![ArchiveJob::new(1, pool)],
            report_decided: false,
            repack: Some(link),
        }
    }

    /// Queues the work through `db` (a maintenance process's instance); returns what it took.
    pub async fn queue(&self, db: &dyn SchedulerDb, set: &DecisionSet) -> Result<Value> {
        eprintln!(
            "queueing repack work: {} retrieve subrequests on {TAPES} REPACKING tapes, {} ArchiveForRepack jobs \
             on {POOLS} pools",
            self.retrieves, self.archives
        );
        let start = Instant::now();
        let policy = Self::policy(0);
        for t in 0..TAPES {
            let vid = Self::vid(t);
            let request = RepackRequest {
                vid: vid.clone(),
                seq: t + 1,
                repack_type: RepackType::Move,
                mount_policy: policy.name.clone(),
                archive_policy: policy.clone(),
                retrieve_policy: policy.clone(),
                buffer_url: "root://buffer//repack".into(),
                no_recall: false,
                max_files: None,
                storage_class: None,
                status: RepackStatus::Pending,
                created_at: T0,
                expansion_started: false,
                expansion_done: false,
                last_expanded_fseq: 0,
                all_files_selected: true,
                counters: RepackCounters::default(),
                failure: None,
            };
            db.queue_repack(request, T0).await?;
            let promote = RepackUpdate {
                expected_status: Some(RepackStatus::Pending),
                status: Some(RepackStatus::ToExpand),
                ..Default::default()
            };
            db.update_repack(&vid, &promote, T0).await?;
            let begin = RepackUpdate {
                expected_status: Some(RepackStatus::ToExpand),
                status: Some(RepackStatus::Starting),
                expansion_started: true,
                ..Default::default()
            };
            db.update_repack(&vid, &begin, T0).await?;
        }
        // Passes: each tape's subrequests in fSeq order, `batch` at a time.
        let mut passes = Vec::new();
        for t in 0..TAPES {
            let mine: Vec<u64> = (1..=self.retrieves).filter(|g| g % TAPES == t).collect();
            for chunk in mine.chunks(self.batch as usize) {
                passes.push((t, chunk.to_vec()));
            }
        }
        let t_retrieves = Instant::now();
        let mut pass_ms = Samples::default();
        let mut stream = futures::stream::iter(passes.into_iter().map(|(t, chunk)| {
            let set = *set;
            async move {
                let subs: Vec<RetrieveRequest> = chunk.iter().map(|g| Self::retrieve(&set, *g)).collect();
                let bytes: u64 = subs.iter().map(|s| s.size).sum();
                let n = subs.len() as u64;
                let update = RepackUpdate {
                    last_expanded_fseq: chunk.last().copied(),
                    counters: RepackCounters {
                        files_on_tape: n,
                        bytes_on_tape: bytes,
                        files_to_retrieve: n,
                        bytes_to_retrieve: bytes,
                        files_to_archive: n,
                        bytes_to_archive: bytes,
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let t0 = Instant::now();
                db.queue_repack_subrequests(&Self::vid(t), subs, &update, NOW).await?;
                Ok::<_, anyhow::Error>(t0.elapsed())
            }
        }))
        .buffer_unordered(IN_FLIGHT);
        while let Some(r) = stream.next().await {
            pass_ms.push(r?);
        }
        drop(stream);
        let retrieves_took = t_retrieves.elapsed();
        let t_archives = Instant::now();
        let batches: Vec<Vec<u64>> =
            (1..=self.archives).collect::<Vec<_>>().chunks(self.batch as usize).map(<[u64]>::to_vec).collect();
        let mut stream = futures::stream::iter(batches.into_iter().map(|chunk| {
            let set = *set;
            async move {
                let batch = RepackReportBatch {
                    archives: chunk.iter().map(|g| Self::archive(&set, *g)).collect(),
                    ..Default::default()
                };
                db.repack_reports_processed(&batch, NOW).await?;
                Ok::<_, anyhow::Error>(())
            }
        }))
        .buffer_unordered(IN_FLIGHT);
        while let Some(r) = stream.next().await {
            r?;
        }
        let archives_took = t_archives.elapsed();
        let seconds = start.elapsed().as_secs_f64();
        eprintln!("repack work queued in {seconds:.1} s");
        Ok(json!({
            "retrieve_subrequests": self.retrieves, "archive_for_repack_jobs": self.archives,
            "repacking_tapes": TAPES, "pools": POOLS, "batch": self.batch, "in_flight": IN_FLIGHT,
            "seconds": seconds,
            "subrequests_per_s": rate(self.retrieves, retrieves_took),
            "pass_ms": pass_ms.json_max(),
            "repack_archives_per_s": rate(self.archives, archives_took),
            "how": "through the backend: queue_repack + update_repack per tape, queue_repack_subrequests passes, \
                    repack_reports_processed batches of archives (a second backend instance)",
        }))
    }

    /// The potential mounts the work adds, keyed as [`MountInfo::sort`] orders them.
    fn expected(&self, set: &DecisionSet) -> BTreeMap<(MountType, Option<String>, Option<String>), u64> {
        let mut out = BTreeMap::new();
        for g in 1..=self.retrieves {
            *out.entry((MountType::Retrieve, None, Some(Self::vid(g % TAPES)))).or_default() += 1;
        }
        for g in 1..=self.archives {
            *out.entry((MountType::ArchiveForRepack, Some(Self::pool(set, g % POOLS)), None)).or_default() += 1;
        }
        out
    }

    /// Fails unless `after` is `before` (the same user mounts, unchanged) plus exactly the
    /// repack mounts the work adds, with their job counts.
    pub fn check(&self, set: &DecisionSet, before: &MountInfo, after: &MountInfo) -> Result<()> {
        type Key = (MountType, Option<String>, Option<String>);
        let key = |m: &Arc<PotentialMount>| -> Key { (m.mount_type, m.tape_pool.clone(), m.vid.clone()) };
        let before: BTreeMap<Key, &Arc<PotentialMount>> = before.potential_mounts.iter().map(|m| (key(m), m)).collect();
        let mut added = BTreeMap::new();
        for m in &after.potential_mounts {
            match before.get(&key(m)) {
                Some(b) if *b == m => {}
                Some(b) => bail!("a user queue changed while repack work was queued: {b:?} became {m:?}"),
                None => {
                    added.insert(key(m), m.files_queued);
                }
            }
        }
        if before.len() + added.len() != after.potential_mounts.len() {
            bail!("user queues disappeared while repack work was queued");
        }
        let want = self.expected(set);
        if added != want {
            bail!(
                "the backend's mount information shows {} new potential mounts ({} jobs), expected {} ({} jobs)",
                added.len(),
                added.values().sum::<u64>(),
                want.len(),
                want.values().sum::<u64>()
            );
        }
        Ok(())
    }
}

/// One side of an interleaved comparison: a backend, the process queueing its arrivals, and the
/// decision it makes.
pub struct Side<'a> {
    /// The deciding process.
    pub db: &'a dyn SchedulerDb,
    /// Arrivals queued by another process before each decision.
    pub arrivals: crate::decision_set::Arrivals<'a>,
}

/// Times `samples` decisions on each of two data sets in alternation (A B, B A, A B...), so a
/// change of the machine's load during the run weighs on both sides alike: the comparison of
/// "without" and "with repack work" is then a ratio of two measurements taken together.
pub async fn interleaved<'s>(
    a: &mut Side<'s>,
    b: &mut Side<'s>,
    decide: &tapesched_scheduler::db::DecideFn<'_>,
    samples: usize,
) -> Result<(Samples, Samples)> {
    let (mut sa, mut sb) = (Samples::default(), Samples::default());
    for i in 0..samples {
        for first_a in [i % 2 == 0, i % 2 != 0] {
            let (side, out) = if first_a { (&mut *a, &mut sa) } else { (&mut *b, &mut sb) };
            side.arrivals.arrive().await?;
            let t = std::time::Instant::now();
            let chosen = side.db.next_mount(crate::decision_set::LIBRARY, crate::decision_set::NOW, decide).await?;
            out.push(t.elapsed());
            anyhow::ensure!(chosen.is_some(), "next_mount chose no mount");
        }
    }
    Ok((sa, sb))
}

/// The report of an interleaved comparison ([`interleaved`]).
pub fn report_interleaved(queued: Value, extra_mounts: usize, without: &Samples, with: &Samples) -> Value {
    json!({
        "queued": queued,
        "extra_potential_mounts": extra_mounts,
        "next_mount_ms": with.json(),
        "next_mount_ms_without_repack_work": without.json(),
        "ratio_p99_with_to_without": ratio(with.pct(0.99), without.pct(0.99)),
        "ratio_p50_with_to_without": ratio(with.pct(0.5), without.pct(0.5)),
        "target_ratio_p99": 1.2,
        "what": "two copies of the data set (same catalogue with the repack VO and REPACKING tapes), the repack \
                 work queued in the second only; decisions timed in alternation on the two (each after its own \
                 arrivals), so load changes weigh on both; ratio: p99 with / p99 without",
    })
}

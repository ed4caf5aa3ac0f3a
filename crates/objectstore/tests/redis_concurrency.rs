//! Many processes on one Redis: 8 producers queue archive and retrieve requests while 8 drive
//! sessions decide, pop and complete; afterwards every request is reported exactly once.
//!
//! Each producer and each drive session has its own `ObjectstoreDb` (its own agent, as separate
//! processes would), all on one key prefix of the CI machine's Redis; they share the catalogue
//! (drive register, tape fill) as they would share the Postgres catalogue. The size is
//! `TAPESCHED_CONCURRENCY_REQUESTS` (default 100 000).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tapesched_objectstore::redis_store::{ClearOnDrop, RedisSettings, RedisStore};
use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_scheduler::catalogue::memory::MemoryCatalogue;
use tapesched_scheduler::catalogue::{Catalogue, CatalogueSnapshot};
use tapesched_scheduler::clock::ManualClock;
use tapesched_scheduler::db::{JobKind, Outcome, ReportFilter, SchedulerDb};
use tapesched_scheduler::decision::SchedulerConfig;
use tapesched_scheduler::scheduler::{ArchiveSubmission, RetrieveSubmission, Scheduler};
use tapesched_scheduler::types::*;
use tokio::sync::Notify;

const T0: i64 = 1_700_000_000;
const PRODUCERS: usize = 8;
const DRIVES: usize = 8;
const POOLS: usize = 8;
const RETRIEVE_TAPES: usize = 16;

fn catalogue(retrieves: usize) -> (CatalogueSnapshot, Vec<ArchiveFile>) {
    let mut s = CatalogueSnapshot::default();
    s.disk_instances.insert("eos".into());
    s.vos.insert(
        "vo".into(),
        VirtualOrganization {
            name: "vo".into(),
            read_max_drives: 8,
            write_max_drives: 8,
            is_repack_vo: false,
            disk_instance: None,
        },
    );
    s.logical_libraries
        .insert("lib".into(), LogicalLibrary { name: "lib".into(), disabled: false, physical_library: None });
    s.mount_policies.insert(
        "mp".into(),
        MountPolicy {
            name: "mp".into(),
            archive_priority: 1,
            archive_min_request_age: 0,
            retrieve_priority: 1,
            retrieve_min_request_age: 0,
        },
    );
    s.mount_rules = vec![MountRule {
        kind: MountRuleKind::Requester,
        disk_instance: "eos".into(),
        name: "default".into(),
        mount_policy: "mp".into(),
    }];
    let tape = |vid: String, pool: String| Tape {
        vid,
        tape_pool: pool,
        logical_library: "lib".into(),
        capacity_bytes: u64::MAX / 4,
        data_on_tape_bytes: 0,
        last_fseq: 0,
        full: false,
        state: TapeState::Active,
        state_reason: None,
        media_type: "LTO8".into(),
        vendor: None,
    };
    for p in 0..POOLS {
        let pool = format!("p{p}");
        s.tape_pools.insert(pool.clone(), TapePool { name: pool.clone(), vo: "vo".into() });
        s.storage_classes
            .insert(format!("sc{p}"), StorageClass { name: format!("sc{p}"), nb_copies: 1, vo: "vo".into() });
        s.archive_routes.push(ArchiveRoute {
            storage_class: format!("sc{p}"),
            copy_nb: 1,
            tape_pool: pool.clone(),
            route_type: ArchiveRouteType::Default,
        });
        for t in 0..2 {
            let t = tape(format!("W{p}{t}"), pool.clone());
            s.tapes.insert(t.vid.clone(), t);
        }
    }
    s.tape_pools.insert("rp".into(), TapePool { name: "rp".into(), vo: "vo".into() });
    for t in 0..RETRIEVE_TAPES {
        let t = tape(format!("R{t:02}"), "rp".into());
        s.tapes.insert(t.vid.clone(), t);
    }
    for d in 0..DRIVES {
        let name = format!("d{d}");
        s.drives.insert(
            name.clone(),
            DriveState {
                name,
                logical_library: "lib".into(),
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
    }
    let files = (0..retrieves as u64)
        .map(|i| ArchiveFile {
            archive_file_id: 1 + i,
            disk_instance: "eos".into(),
            disk_file_id: format!("r{i}"),
            size: 1000,
            storage_class: "sc0".into(),
            copies: vec![TapeFile {
                copy_nb: 1,
                vid: format!("R{:02}", i as usize % RETRIEVE_TAPES),
                fseq: 1 + i / RETRIEVE_TAPES as u64,
                block_id: 0,
            }],
        })
        .collect();
    (s, files)
}

fn settings(prefix: &str) -> RedisSettings {
    RedisSettings::new(tapesched_testkit::redis_url().expect("a Redis server"), prefix)
}

fn scheduler(prefix: &str, cat: &Arc<MemoryCatalogue>, clock: &Arc<ManualClock>) -> (Scheduler, Arc<ObjectstoreDb>) {
    let store = Arc::new(RedisStore::new(settings(prefix)).unwrap());
    let db = Arc::new(ObjectstoreDb::new(store, ObjectstoreConfig::default()));
    let s = Scheduler::new(db.clone(), cat.clone(), clock.clone(), SchedulerConfig::default());
    (s, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn producers_and_drive_sessions_report_every_request_exactly_once() {
    let total: usize =
        std::env::var("TAPESCHED_CONCURRENCY_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let retrieves = total / 5;
    let archives = total - retrieves;
    let prefix = format!("{}:", tapesched_testkit::unique_name("concurrency"));
    let _cleanup = ClearOnDrop(settings(&prefix));
    let (snap, files) = catalogue(retrieves);
    let cat = Arc::new(MemoryCatalogue::new(snap, files).unwrap());
    let clock = Arc::new(ManualClock::new(T0));
    let work = Arc::new(Notify::new());
    let producers_left = Arc::new(AtomicUsize::new(PRODUCERS));

    let mut tasks = Vec::new();
    for p in 0..PRODUCERS {
        let (s, _) = scheduler(&prefix, &cat, &clock);
        let (work, left) = (work.clone(), producers_left.clone());
        tasks.push(tokio::spawn(async move {
            let ids: Vec<u64> = (0..archives as u64).filter(|i| *i as usize % PRODUCERS == p).collect();
            for chunk in ids.chunks(100) {
                let subs = chunk
                    .iter()
                    .map(|i| ArchiveSubmission {
                        archive_file_id: Some(1_000_000 + i),
                        disk_instance: Some("eos".into()),
                        disk_file_id: None,
                        requester: Requester { name: format!("u{p}"), group: "g".into() },
                        storage_class: format!("sc{}", i % POOLS as u64),
                        size: 1000 + i % 7,
                        created_at: Some(T0 - 10),
                        report_url: Some("eos://r".into()),
                        error_report_url: None,
                    })
                    .collect();
                for r in s.queue_archives(subs).await.expect("queued") {
                    r.expect("each request is queued");
                }
                work.notify_waiters();
            }
            for i in (0..retrieves as u64).filter(|i| *i as usize % PRODUCERS == p) {
                s.queue_retrieve(RetrieveSubmission {
                    archive_file_id: 1 + i,
                    requester: Some(Requester { name: format!("u{p}"), group: "g".into() }),
                    report_url: Some("eos://done".into()),
                    created_at: Some(T0 - 10),
                    ..RetrieveSubmission::default()
                })
                .await
                .expect("retrieve queued");
                if i % 100 == 0 {
                    work.notify_waiters();
                }
            }
            left.fetch_sub(1, Ordering::SeqCst);
            work.notify_waiters();
        }));
    }
    let completed = Arc::new(AtomicUsize::new(0));
    let popped = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    for d in 0..DRIVES {
        let (s, db) = scheduler(&prefix, &cat, &clock);
        let (work, left, completed, popped) = (work.clone(), producers_left.clone(), completed.clone(), popped.clone());
        tasks.push(tokio::spawn(async move {
            let drive = format!("d{d}");
            loop {
                let notified = work.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let producing = left.load(Ordering::SeqCst) > 0;
                match s.next_mount(&drive, true).await.expect("decision") {
                    Some(mut session) => {
                        loop {
                            let jobs =
                                s.pop_jobs(&mut session, 500, tapesched_scheduler::bounds::MAX).await.expect("pop");
                            if jobs.is_empty() {
                                break;
                            }
                            completed.fetch_add(jobs.len(), Ordering::SeqCst);
                            {
                                let mut popped = popped.lock().unwrap();
                                for j in &jobs {
                                    assert!(popped.insert(j.id()), "{:?} popped twice", j.id());
                                }
                            }
                            s.complete_jobs(&mut session, None, Outcome::Success, None).await.expect("complete");
                        }
                        s.end_mount(session).await.expect("end");
                        work.notify_waiters();
                    }
                    None => {
                        // Nothing to mount: done once the producers have finished and every
                        // transfer queue is empty; else wait for new work or a mount to end.
                        if !producing && db.mount_info(T0).await.expect("info").potential_mounts.is_empty() {
                            return;
                        }
                        notified.await;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }

    let (s, db) = scheduler(&prefix, &cat, &clock);
    assert!(db.mount_info(T0).await.unwrap().potential_mounts.is_empty(), "every queue drained");
    for (key, jobs) in db.dump_queues().await.unwrap() {
        let mut pointers = BTreeSet::new();
        for j in jobs {
            assert!(pointers.insert((j.address.clone(), j.copy_nb)), "{} twice in {key:?}", j.address);
        }
    }
    let mut seen: BTreeMap<(JobKind, u64), usize> = BTreeMap::new();
    loop {
        let reports = s.report(ReportFilter::All, Some(10_000), true).await.expect("reports");
        if reports.is_empty() {
            break;
        }
        for r in reports {
            assert_eq!(r.outcome, Outcome::Success);
            *seen.entry((r.kind(), r.archive_file_id)).or_default() += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "reported more than once: {twice:?}");
    let archived: BTreeSet<u64> = seen.keys().filter(|(k, _)| *k == JobKind::Archive).map(|(_, id)| *id).collect();
    let recalled = seen.keys().filter(|(k, _)| *k == JobKind::Retrieve).count();
    if (archived.len(), recalled) != (archives, retrieves) {
        // Say where the lost requests are before failing.
        let got: BTreeSet<u64> = seen.keys().map(|(_, id)| *id).collect();
        for name in db.objects().store().list("").await.unwrap() {
            if let Some(id) = name.strip_prefix("ArchiveRequest-").and_then(|i| i.parse::<u64>().ok()) {
                if !got.contains(&id) {
                    let raw = db.objects().store().read(&name).await.unwrap().unwrap_or_default();
                    eprintln!("lost {name}: {}", String::from_utf8_lossy(&raw));
                }
            }
        }
        eprintln!("agents: {:?}", db.agents().await.unwrap());
    }
    assert_eq!((archived.len(), recalled), (archives, retrieves), "none lost");
    let left: Vec<_> = db.dump_queues().await.unwrap().into_iter().filter(|(_, jobs)| !jobs.is_empty()).collect();
    assert!(left.is_empty(), "nothing left in any queue: {left:?}");
    assert_eq!(completed.load(Ordering::SeqCst), total, "every job popped and completed once");
    let tapes = cat.snapshot().await.unwrap();
    let written: u64 = tapes.tapes.values().filter(|t| t.vid.starts_with('W')).map(|t| t.last_fseq).sum();
    assert_eq!(written as usize, archives, "each archive written to tape once");
}

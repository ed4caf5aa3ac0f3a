//! Shared helpers of the workspace-level tests: the backends under test and a small catalogue.
//!
//! Every `SchedulerDb` implementation is listed in [`backend`]; the conformance suite
//! (`conformance.rs`) runs each of its cases on each of them, each case on a fresh namespace.

use std::sync::Arc;

use tapesched_scenario::backend::{Backend, OpenBackend};
use tapesched_scheduler::catalogue::memory::MemoryCatalogue;
use tapesched_scheduler::catalogue::CatalogueSnapshot;
use tapesched_scheduler::clock::ManualClock;
use tapesched_scheduler::db::SchedulerDb;
use tapesched_scheduler::decision::SchedulerConfig;
use tapesched_scheduler::scheduler::Scheduler;
use tapesched_scheduler::types::*;

/// The scenario clock's default start.
pub const T0: i64 = 1_700_000_000;

/// A fresh backend of the named kind, in its own namespace (removed when it is dropped).
pub async fn backend(name: &str) -> OpenBackend {
    let backend = Backend::from_name(name).unwrap_or_else(|e| panic!("{e}"));
    backend.open().await.unwrap_or_else(|e| panic!("cannot open backend {name}: {e}"))
}

/// A scheduler, its clock and its backend over [`catalogue`].
pub struct Fixture {
    /// The scheduler.
    pub scheduler: Scheduler,
    /// Its clock (starts at [`T0`]).
    pub clock: Arc<ManualClock>,
    /// The backend.
    pub db: Arc<dyn SchedulerDb>,
    /// Keeps the backend's namespace until the fixture is dropped.
    _namespace: OpenBackend,
}

impl Fixture {
    /// A fixture on a fresh backend of the named kind.
    pub async fn new(backend_name: &str) -> Fixture {
        Fixture::with_config(backend_name, SchedulerConfig::default()).await
    }
    /// A fixture with scheduler settings of its own.
    pub async fn with_config(backend_name: &str, config: SchedulerConfig) -> Fixture {
        let open = backend(backend_name).await;
        let db = open.db.clone();
        let (snapshot, files) = catalogue();
        let catalogue = Arc::new(MemoryCatalogue::new(snapshot, files).expect("valid catalogue"));
        let clock = Arc::new(ManualClock::new(T0));
        let scheduler = Scheduler::new(db.clone(), catalogue, clock.clone(), config);
        Fixture { scheduler, clock, db, _namespace: open }
    }
    /// Moves the clock `secs` past [`T0`].
    pub fn at(&self, secs: i64) {
        self.clock.set(T0 + secs);
    }
}

fn tape(vid: &str, pool: &str, data: u64) -> Tape {
    Tape {
        vid: vid.into(),
        tape_pool: pool.into(),
        logical_library: "lib".into(),
        capacity_bytes: 10_000_000_000,
        data_on_tape_bytes: data,
        last_fseq: 10,
        full: false,
        state: TapeState::Active,
        state_reason: None,
        media_type: "LTO8".into(),
        vendor: None,
    }
}

/// A small catalogue: VO `vo` and the repack VO `repack_vo`, pools `p1` and `p:{2}` (a name with characters a key scheme must
/// escape), storage classes `sc1` (one copy to p1) and `sc2` (p1 and `p:{2}`), tapes `T1`, `T2`
/// (p1) and `T3` (`p:{2}`), drives `d0`..`d2`, and file 100 with copies on T1 (fSeq 5) and T3
/// (fSeq 3), files 101..=105 on T1 (fSeq 9 down to 5).
pub fn catalogue() -> (CatalogueSnapshot, Vec<ArchiveFile>) {
    let mut s = CatalogueSnapshot::default();
    s.disk_instances.insert("eos".into());
    s.vos.insert(
        "vo".into(),
        VirtualOrganization {
            name: "vo".into(),
            read_max_drives: 5,
            write_max_drives: 5,
            is_repack_vo: false,
            disk_instance: None,
        },
    );
    s.vos.insert(
        "repack_vo".into(),
        VirtualOrganization {
            name: "repack_vo".into(),
            read_max_drives: 1,
            write_max_drives: 1,
            is_repack_vo: true,
            disk_instance: None,
        },
    );
    s.logical_libraries
        .insert("lib".into(), LogicalLibrary { name: "lib".into(), disabled: false, physical_library: None });
    for p in ["p1", "p:{2}"] {
        s.tape_pools.insert(p.into(), TapePool { name: p.into(), vo: "vo".into() });
    }
    for (sc, n) in [("sc1", 1), ("sc2", 2)] {
        s.storage_classes.insert(sc.into(), StorageClass { name: sc.into(), nb_copies: n, vo: "vo".into() });
    }
    let route = |sc: &str, copy_nb, pool: &str| ArchiveRoute {
        storage_class: sc.into(),
        copy_nb,
        tape_pool: pool.into(),
        route_type: ArchiveRouteType::Default,
    };
    s.archive_routes = vec![route("sc1", 1, "p1"), route("sc2", 1, "p1"), route("sc2", 2, "p:{2}")];
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
    // Repack work is urgent in the tests that use it (it then wins mounts over user work).
    s.mount_policies.insert(
        "repack".into(),
        MountPolicy {
            name: "repack".into(),
            archive_priority: 5,
            archive_min_request_age: 0,
            retrieve_priority: 5,
            retrieve_min_request_age: 0,
        },
    );
    s.mount_rules = vec![MountRule {
        kind: MountRuleKind::Requester,
        disk_instance: "eos".into(),
        name: "default".into(),
        mount_policy: "mp".into(),
    }];
    for t in [tape("T1", "p1", 500), tape("T2", "p1", 100), tape("T3", "p:{2}", 0)] {
        s.tapes.insert(t.vid.clone(), t);
    }
    for d in ["d0", "d1", "d2"] {
        s.drives.insert(
            d.into(),
            DriveState {
                name: d.into(),
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
    let copy = |vid: &str, fseq| TapeFile { copy_nb: 1, vid: vid.into(), fseq, block_id: 0 };
    let mut files = vec![ArchiveFile {
        archive_file_id: 100,
        disk_instance: "eos".into(),
        disk_file_id: "0x64".into(),
        size: 1000,
        storage_class: "sc2".into(),
        copies: vec![copy("T1", 5), TapeFile { copy_nb: 2, ..copy("T3", 3) }],
    }];
    for (i, id) in (101..=105).enumerate() {
        files.push(ArchiveFile {
            archive_file_id: id,
            disk_instance: "eos".into(),
            disk_file_id: format!("{id:#x}"),
            size: 10,
            storage_class: "sc1".into(),
            copies: vec![copy("T1", 9 - i as u64)],
        });
    }
    (s, files)
}

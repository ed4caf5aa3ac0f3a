//! The lockstep runner end to end: the smoke workload on two backends (in memory, and on real
//! Redis and PostgreSQL), reproducibility from the seed, a deliberately diverging pair stopping at
//! the first divergence with both explanations, and wrong input.

use std::path::{Path, PathBuf};

use tapesched_backends::Backend;
use tapesched_e2e::{run, BackendSpec, E2eError, RunOptions, Workload};
use tapesched_report::e2e::E2eRecord;
use tapesched_scheduler::decision::SchedulerConfig;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn smoke() -> Workload {
    Workload::read(&root().join("compat/workloads/smoke.yml")).unwrap()
}

/// The smoke workload cut short: 20 simulated minutes of arrivals.
fn short() -> Workload {
    let mut w = smoke();
    w.duration = 1200;
    w.incidents.retain(|i| i.at < 1200);
    w
}

fn options(w: Workload, backends: Vec<BackendSpec>) -> RunOptions {
    RunOptions {
        workload: w,
        workload_file: "compat/workloads/smoke.yml".into(),
        config_dir: root().join("compat/mhvtl/lto9"),
        backends,
        context: vec![],
    }
}

fn check_clean(r: &E2eRecord) {
    assert!(r.divergences.is_empty(), "{:#?}", r.divergences);
    assert!(r.passed(), "{:#?}", r.backends.iter().map(|b| &b.invariants).collect::<Vec<_>>());
    assert!(r.decisions.compared > 0 && r.decisions.compared == r.decisions.matched);
    assert!(r.decisions.mounts_chosen > 0);
    let first = &r.backends[0];
    assert!(first.totals.archives_queued > 0 && first.totals.retrieves_queued > 0);
    assert_eq!(
        first.totals.archived + first.totals.retrieved + first.totals.failed,
        first.totals.archives_queued + first.totals.retrieves_queued
    );
    assert!(first.archive_latency.count > 0 && first.retrieve_latency.count > 0);
    assert!(!first.samples.is_empty());
    assert!(first.invariants.len() >= 4);
    for b in &r.backends[1..] {
        assert_eq!(b.totals, first.totals, "{} and {} did different work", b.backend, first.backend);
        assert_eq!(b.samples, first.samples);
    }
}

#[tokio::test]
async fn smoke_in_lockstep_on_two_memory_backends() {
    let b = BackendSpec::new(Backend::ObjectstoreMemory);
    let r = run(options(short(), vec![b.clone(), BackendSpec { label: "objectstore-memory-2".into(), ..b }]), |_| {})
        .await
        .unwrap();
    check_clean(&r);
}

#[tokio::test]
async fn smoke_in_lockstep_on_redis_and_postgres() {
    let backends = vec![BackendSpec::new(Backend::ObjectstoreRedis), BackendSpec::new(Backend::Postgres)];
    let r = run(options(smoke(), backends), |_| {}).await.unwrap();
    check_clean(&r);
    assert_eq!(r.backends[0].backend, "objectstore-redis");
    assert_eq!(r.backends[1].backend, "postgres");
}

#[tokio::test]
async fn the_record_is_reproducible_from_the_seed() {
    let once = || async {
        let mut r = run(options(short(), vec![BackendSpec::new(Backend::ObjectstoreMemory)]), |_| {}).await.unwrap();
        for b in &mut r.backends {
            b.wall_s = 0.0;
            b.time_split.clear();
        }
        r
    };
    let (a, b) = (once().await, once().await);
    assert!(a.backends[0].totals.archived > 0);
    assert_eq!(a, b);
    let mut w = short();
    w.seed += 1;
    let mut c = run(options(w, vec![BackendSpec::new(Backend::ObjectstoreMemory)]), |_| {}).await.unwrap();
    c.backends[0].wall_s = 0.0;
    c.backends[0].time_split.clear();
    assert_ne!(a.backends[0].totals, c.backends[0].totals, "another seed, other requests");
}

#[tokio::test]
async fn the_first_divergence_stops_the_run_with_both_explanations() {
    let same = BackendSpec::new(Backend::ObjectstoreMemory);
    // The other side wants a million files or a petabyte before it mounts, or else the mount
    // policy's minimum age: its first decision after the first request differs.
    let picky = BackendSpec {
        label: "picky".into(),
        config: SchedulerConfig {
            min_files_to_warrant_mount: 1_000_000,
            min_bytes_to_warrant_mount: 1_000_000_000_000_000,
            ..SchedulerConfig::default()
        },
        ..same.clone()
    };
    let r = run(options(short(), vec![same, picky]), |_| {}).await.unwrap();
    assert!(!r.passed());
    assert_eq!(r.divergences.len(), 1, "{:#?}", r.divergences);
    let d = &r.divergences[0];
    assert!(d.concerns.starts_with("drive ULT1"), "{}", d.concerns);
    assert_eq!(d.answers.len(), 2);
    assert!(d.answers.iter().all(|a| a.contains("Decision:") && a.contains("Candidates")), "{:#?}", d.answers);
    assert_ne!(d.answers[0], d.answers[1]);
    assert_eq!(r.decisions.compared, r.decisions.matched + 1);
    assert!(r.end_s < r.start_s + 1200 + 21_600, "stopped early");
    assert!(r.backends.iter().all(|b| b.invariants.is_empty()), "no checks after a divergence");
}

#[tokio::test]
async fn a_config_dir_without_device_conf_is_named() {
    let mut o = options(short(), vec![BackendSpec::new(Backend::ObjectstoreMemory)]);
    o.config_dir = root().join("compat/workloads");
    let e = run(o, |_| {}).await.unwrap_err();
    assert!(matches!(e, E2eError::Config(_)), "{e}");
    assert!(e.to_string().contains("no device.conf"), "{e}");
    let mut o = options(short(), vec![BackendSpec::new(Backend::ObjectstoreMemory)]);
    o.workload.tapes[0].count = 1000;
    let e = run(o, |_| {}).await.unwrap_err();
    assert!(e.to_string().contains("tapes: the groups ask for"), "{e}");
}

#[test]
fn every_compat_workload_parses() {
    for f in ["smoke.yml", "day.yml", "stress.yml"] {
        Workload::read(&root().join("compat/workloads").join(f)).unwrap_or_else(|e| panic!("{e}"));
    }
    let e = Workload::read(&root().join("compat/workloads/missing.yml")).unwrap_err();
    assert!(e.to_string().contains("cannot read the workload file"), "{e}");
}

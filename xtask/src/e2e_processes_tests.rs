//! Tests of the processes mode: the smoke workload's conversion to producer events, the whole
//! mode on both backends, the invariants, the tolerances and the harness's helpers.

use super::*;

fn smoke() -> (Workload, Plan) {
    let w = Workload::read(&root().join("compat/workloads/smoke.yml")).unwrap();
    let plan = Plan::new(&root().join("compat/mhvtl/lto9"), &w).unwrap();
    (w, plan)
}

#[test]
fn the_smoke_workload_converts_to_producer_events() {
    let (w, plan) = smoke();
    let generated = events(&w, &plan);
    let (evs, faults) = producer_events(&w, &generated, "file:///tmp/r.jsonl").unwrap();
    let count = |f: fn(&IncidentKind) -> bool| {
        generated.iter().filter(|e| matches!(&e.kind, EventKind::Incident(k) if f(k))).count()
    };
    let downs = count(|k| matches!(k, IncidentKind::DriveDown(_)));
    let incidents = count(|_| true);
    assert!(downs > 0 && incidents > downs, "smoke has a drive going down and other incidents");
    // Every incident but the drives going down is a producer's event; those are the daemon's faults.
    assert_eq!(evs.len(), generated.len() - downs);
    assert_eq!(faults.matches("[[library.faults]]").count(), downs);
    assert!(faults.contains("drive = \"ULT16\""), "{faults}");
    for (op, kind) in [
        ("mark_tape_full", count(|k| matches!(k, IncidentKind::TapeFull(_)))),
        ("change_tape_state", count(|k| matches!(k, IncidentKind::TapeDisabled(_)))),
        ("queue_repack", count(|k| matches!(k, IncidentKind::Repack { .. }))),
    ] {
        assert_eq!(evs.iter().filter(|e| e.action.op() == op).count(), kind, "{op}");
    }
    // The faults parse as a tape daemon's configuration reads them.
    let lib = root().join("compat/mhvtl/lto9");
    let text = format!(
        "[backend]\nname = \"postgres\"\n[catalogue]\npostgres = true\n[library]\nkind = \"sim\"\nconfig_dir = {:?}\n[[drives]]\nname = \"ULT16\"\n{faults}",
        lib.display().to_string()
    );
    let config = tapesched_taped::Config::parse(&text, &root().join("c.toml")).unwrap();
    assert_eq!(config.faults().len(), downs);
    // Times in order, within the span (arrivals round up to the arrival tick, so the last may fall on its end).
    assert!(evs.windows(2).all(|p| p[0].at <= p[1].at));
    assert!(evs.iter().all(|e| e.at >= w.start && e.at <= w.start + w.duration as i64));
    let archives = evs.iter().filter(|e| e.action.op() == "queue_archive").count();
    let retrieves = evs.iter().filter(|e| e.action.op() == "queue_retrieve").count();
    assert!(archives > 0 && retrieves > 0);
    // Every line parses back as the producer reads it.
    for e in &evs {
        let line = serde_json::to_string(e).unwrap();
        assert_eq!(&Event::parse_line(&line).unwrap(), e, "{line}");
    }
    match &evs.iter().find(|e| e.action.op() == "queue_archive").unwrap().action {
        Action::QueueArchive { storage_class, requester, report_url, .. } => {
            assert!(storage_class == "atlas_raw" || storage_class == "cms_raw");
            assert!(requester.is_some());
            assert_eq!(report_url.as_deref(), Some("file:///tmp/r.jsonl"));
        }
        other => panic!("{other:?}"),
    }
}

/// The whole processes mode on the smoke workload, both backends at once: every invariant
/// must hold (each request reported exactly once, none failed, the repack completed, in
/// time). The tolerances between backends depend on the machine's load: printed, not
/// asserted.
#[test]
fn the_smoke_workload_runs_as_processes_on_both_backends() {
    let w = Workload::read(&root().join("compat/workloads/smoke.yml")).unwrap();
    let out = std::env::temp_dir().join(format!("e2e-processes-test-{}", std::process::id()));
    let record = run(ProcessesOptions {
        workload: w,
        workload_file: "compat/workloads/smoke.yml".into(),
        config_dir: root().join("compat/mhvtl/lto9"),
        library: E2eLibrary::Sim,
        backends: vec![Backend::ObjectstoreRedis, Backend::Postgres],
        factor: 600.0,
        out: out.clone(),
        context: vec![],
    })
    .unwrap();
    let _ = std::fs::remove_dir_all(&out);
    for b in &record.backends {
        let failed: Vec<_> = b.invariants.iter().filter(|i| !i.ok).collect();
        assert!(failed.is_empty(), "{}: {failed:?}", b.backend);
        assert!(b.invariants.iter().any(|i| i.name == "every repack queued completed"), "{:?}", b.invariants);
        assert_eq!((b.totals.repacks_queued, b.totals.repacks_done), (1, 1), "{}", b.backend);
        assert!(b.totals.archived > 0 && b.totals.retrieved > 0, "{:?}", b.totals);
    }
    for t in &record.tolerances {
        println!("{} {:?}: {}", t.measure, t.values, if t.ok { "within" } else { "outside" });
    }
}

#[test]
fn the_collector_tolerates_a_minute_of_wall_silence_at_any_factor() {
    assert_eq!(mount_timeout_s(600.0), 36_000);
    assert_eq!(mount_timeout_s(1.0), 900, "the default at wall speed");
    assert_eq!(mount_timeout_s(20.0), 1_200);
}

#[test]
fn failure_lines_are_counted_with_the_first_named() {
    let out = "t=1 ULT11 mounted V00101\nt=2 ULT11 step failed: timed out\nt=3 heartbeat failed: gone\n";
    assert_eq!(failures_said(out), (2, Some("t=2 ULT11 step failed: timed out")));
    assert_eq!(failures_said("collect: requeued 0 job(s)\nerror: collect: down\n").0, 1);
    assert_eq!(failures_said("t=1 ULT11 mounted V00101\n"), (0, None));
}

#[test]
fn tolerances_hold_within_their_bounds_only() {
    assert!(tolerance("m", vec![10.0, 6.0], 0.5, 1.0).ok);
    assert!(!tolerance("m", vec![10.0, 4.0], 0.5, 1.0).ok);
    // The absolute bound allows small values to differ more than the relative one.
    assert!(tolerance("m", vec![1.0, 1.9], 0.5, 1.0).ok);
    assert!(tolerance("m", vec![1000.0, 1700.0], 0.5, 300.0).ok);
    assert!(!tolerance("p99", vec![3000.0, 900.0], 0.5, 600.0).ok);
    assert!(tolerance("one", vec![5.0], 0.0, 0.0).ok);
    let a = RunOutcome { mounts_per_hour: 12.0, files_per_mount: 40.0, ..RunOutcome::default() };
    let b = RunOutcome { mounts_per_hour: 2.0, files_per_mount: 38.0, ..RunOutcome::default() };
    let t = tolerances(&[a, b]);
    assert_eq!(t.len(), TOLERANCES.len());
    assert!(!t[0].ok && t[1].ok && t[2].ok, "{t:?}");
    assert_eq!(t[0].values, vec![12.0, 2.0]);
}

#[test]
fn invariants_name_what_is_wrong() {
    let good = RunOutcome { queued: 3, succeeded: 3, ..RunOutcome::default() };
    assert!(invariants(&good, 3).iter().all(|i| i.ok));
    let bad = RunOutcome { queued: 3, missing_count: 1, unknown_reports: 2, ..RunOutcome::default() };
    let failed: Vec<String> = invariants(&bad, 4).into_iter().filter(|i| !i.ok).map(|i| i.name).collect();
    assert_eq!(failed, ["every request queued", "every request reported", "no unknown report"]);
}

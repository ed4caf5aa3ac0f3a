//! Writes a demonstration report (a bridge log with a `next_mount` mismatch, an ignored
//! divergence, hostile names and several latency distributions) into the directory given as
//! the first argument (default `report-demo`), to look at the rendering:
//! `cargo run -p tapesched-report --example demo -- /tmp/demo`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use tapesched_bridge::{Answer, Concern, Divergence, DivergenceLog, IgnoreRule, Sampling, Side, Stage};
use tapesched_report::bridge::BridgeReport;
use tapesched_scheduler::ErrorKind;

fn mount(vid: &str, queues: &[(&str, u64)]) -> serde_json::Value {
    let pms: Vec<_> = queues
        .iter()
        .map(|(pool, files)| {
            json!({"mount_type": "ArchiveForUser", "tape_pool": pool, "vid": null, "files_queued": files,
                   "bytes_queued": files * 1000, "oldest_job_start": 1_700_000_000, "youngest_job_start": 1_700_000_050,
                   "priority": 2, "min_request_age": 0, "policy_counts": {"mp": files}, "sleep": null})
        })
        .collect();
    json!({"chosen": {"mount_type": "ArchiveForUser", "vid": vid, "tape_pool": queues[0].0, "vo": "vo",
                      "drive": "drive0", "logical_library": "lib"},
           "mount_info": {"potential_mounts": pms}})
}

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "report-demo".into()));
    let rule = IgnoreRule::new("mount-ids", "mount ids are each backend's", |d| d.op == "open_mount");
    let log = DivergenceLog::with(Sampling::default(), vec![rule]);
    let mut seed = 7u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (op, legacy_us, target_us, n) in [
        ("queue_archive", 300u64, 2_000u64, 400),
        ("next_mount", 20_000, 4_000, 120),
        ("pop_jobs", 900, 6_000, 200),
        ("<script>alert(1)</script>", 50, 60, 10),
    ] {
        for _ in 0..n {
            let l = legacy_us + next() % (legacy_us * 3);
            let t = target_us + next() % (target_us * 2);
            log.answered(op, Side::Legacy, Duration::from_micros(l), next() % 97 == 0);
            log.answered(op, Side::Target, Duration::from_micros(t), false);
            log.count_call(op);
            log.matched(op);
        }
    }
    for (i, at) in [10i64, 15, 70, 300, 305, 306].iter().enumerate() {
        let mut d = Divergence::new(
            if i % 2 == 0 { "next_mount" } else { "pop_jobs" },
            vec![Concern::Drive("drive0".into()), Concern::Mount(7 + i as u64)],
            Answer::Value(mount("V00001", &[("pool-a", 12), ("pool-b", 3)])),
            Answer::Value(mount("V00002", &[("pool-a", 11), ("pool-c", 3)])),
            1_764_800_000 + at,
        )
        .noted("different mount chosen from different mount info");
        d.stage = Stage::Shadow;
        if i % 2 == 1 {
            d.legacy = Answer::value(&vec![1u64, 2, 3]);
            d.target = Answer::Error { kind: ErrorKind::Unavailable, message: "connection lost <at commit>".into() };
            d.note = Some("the target side could not claim the 3 jobs popped".into());
        }
        log.record(d);
    }
    log.record(Divergence::new(
        "open_mount",
        vec![Concern::Mount(9)],
        Answer::NotAsked,
        Answer::value(&9u64),
        1_764_800_100,
    ));
    let mut builder = BridgeReport::new("Bridge comparison (demo)", "objectstore-redis", "postgres");
    builder.context = vec!["stage shadow since 2026-12-04 04:00 UTC".into(), "demo data, not a measurement".into()];
    let (md, html) = tapesched_report::write_report(&dir, &builder.from_log(&log))?;
    println!("{}\n{}", md.display(), html.display());
    Ok(())
}

//! A measurement, not a check (ignored by default): a simulated day of 100 LTO-9 drives archiving
//! `TAPED_BENCH_FILES` files (default 100 000) of 2 GB through the daemon on PostgreSQL. Prints
//! the wall time, the process's CPU time and the CPU per file; asserts only that every file was
//! archived once.
//!
//! `TAPED_BENCH_IDLE_MS` sets the idle drives' polling interval (default 60 000).
//!
//! `cargo test -p tapesched-taped --release --test bench -- --ignored --nocapture`

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Instant;

use common::*;
use tapesched_backends::Backend;
use tapesched_taped::workload::DiskSide;

const DRIVES: usize = 100;
const TAPES: usize = 400;

/// CPU time of this process (user + system), seconds, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    ticks / 100.0
}

/// A 100-drive library in mhVTL's format and its catalogue, in a scratch directory.
fn hundred_drive_library() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("taped-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut conf = String::from("VERSION: 5\n\nLibrary: 50 CHANNEL: 00 TARGET: 00 LUN: 00\n Vendor identification: IBM\n Product identification: 03584L32\n Unit serial number: LIB50\n");
    let mut contents = String::from("VERSION: 2\n\n");
    let mut catalogue = String::from(
        "disk_instances: [eos]\nvirtual_organizations:\n  - {name: vo, read_max_drives: 100, write_max_drives: 100}\n\
         logical_libraries: [{name: lib}]\ntape_pools: [{name: pool_a, vo: vo}]\n\
         storage_classes: [{name: sc_pool_a, nb_copies: 1, vo: vo}]\n\
         archive_routes: [{storage_class: sc_pool_a, copy_nb: 1, tape_pool: pool_a}]\n\
         mount_policies:\n  - {name: mp, archive_priority: 1, archive_min_request_age: 300, retrieve_priority: 2, retrieve_min_request_age: 300}\n\
         mount_rules: [{kind: requester, disk_instance: eos, name: default, mount_policy: mp}]\ntapes:\n",
    );
    let mut drives = String::from("drives:\n");
    for i in 1..=DRIVES {
        let _ = write!(
            conf,
            "\nDrive: {} CHANNEL: 00 TARGET: {i:02} LUN: 00\n Library ID: 50 Slot: {i:02}\n Vendor identification: IBM\n Product identification: ULT3580-TD9\n Unit serial number: D{i:03}\n",
            1000 + i
        );
        let _ = writeln!(contents, "Drive {i}: D{i:03}");
        let _ = writeln!(drives, "  - {{name: D{i:03}, logical_library: lib}}");
    }
    contents.push_str("\nPicker 1:\n\n");
    for t in 1..=TAPES {
        let _ = writeln!(contents, "Slot {t}: B{t:05}L9");
        let _ = writeln!(
            catalogue,
            "  - {{vid: B{t:05}, tape_pool: pool_a, logical_library: lib, capacity_bytes: 18000000000000}}"
        );
    }
    for t in TAPES + 1..=TAPES + DRIVES {
        let _ = writeln!(contents, "Slot {t}:");
    }
    std::fs::write(dir.join("device.conf"), conf).unwrap();
    std::fs::write(dir.join("library_contents.50"), contents).unwrap();
    std::fs::write(dir.join("catalogue.yml"), catalogue + &drives).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn hundred_drives_a_day_on_postgres() {
    let files: usize = std::env::var("TAPED_BENCH_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let dir = hundred_drive_library();
    let names: Vec<String> = (1..=DRIVES).map(|i| format!("D{i:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let idle: u64 = std::env::var("TAPED_BENCH_IDLE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(60_000);
    let mut text = config_text("x", 50, "y", &refs, "").replace("idle_ms = 60000", &format!("idle_ms = {idle}"));
    text = text
        .replace(&root().join("x").display().to_string(), &dir.display().to_string())
        .replace(&root().join("y").display().to_string(), &dir.join("catalogue.yml").display().to_string());
    let (wall0, cpu0) = (Instant::now(), cpu_seconds());
    let (mut built, open, _events) = daemon(Backend::Postgres, &text).await;
    let s = built.scheduler.clone();
    let mut queued = BTreeSet::new();
    for chunk in 0..files.div_ceil(10_000) {
        let n = (files - chunk * 10_000).min(10_000);
        queued.extend(queue_archives(&s, "sc_pool_a", &vec![2_000_000_000; n], |_| None).await);
    }
    let (wall1, cpu1) = (wall0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    let mut disk = DiskSide::new(false);
    for hour in 1..=24 {
        built.daemon.run_until(START * 1000 + hour * HOUR_MS, None).await.unwrap();
        disk.pump(&s).await.unwrap();
    }
    built.daemon.drain().await.unwrap();
    disk.pump(&s).await.unwrap();
    let (wall, cpu) = (wall0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    let total = built.daemon.summary().total();
    println!(
        "idle_ms {idle}: {DRIVES} drives, {files} files of 2 GB, one simulated day on postgres: archived {} in {} mounts; \
         queueing {wall1:.1} s wall / {cpu1:.1} s CPU; whole run {wall:.1} s wall, {cpu:.1} s CPU of this process \
         ({:.0} us CPU per file, the PostgreSQL server's CPU not included)",
        total.archived,
        total.mounts,
        (cpu - cpu1) * 1e6 / files as f64
    );
    assert_eq!(disk.archived, queued);
    open.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

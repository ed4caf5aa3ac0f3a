//! A measurement, not a check (ignored by default): a simulated day of 100 LTO-9 drives archiving
//! `TAPED_BENCH_FILES` files (default 100 000) of 2 GB through the daemon on PostgreSQL
//! ([`tapesched_taped::simday`], which `cargo xtask bench --taped` runs too). Prints the wall
//! time, the process's CPU time, the CPU per file and where the drives' time went; asserts only
//! that every file was archived once.
//!
//! `TAPED_BENCH_IDLE_MS` sets the idle drives' polling interval (default 60 000).
//!
//! `cargo test -p tapesched-taped --release --test bench -- --ignored --nocapture`

use tapesched_backends::Backend;
use tapesched_taped::simday::{self, SimDay};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn hundred_drives_a_day_on_postgres() {
    let files: usize = std::env::var("TAPED_BENCH_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let idle: u64 = std::env::var("TAPED_BENCH_IDLE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(60_000);
    let day = SimDay { idle_ms: idle, ..SimDay::hundred_drives(files) };
    let dir = std::env::temp_dir().join(format!("taped-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let open = Backend::Postgres.open().await.expect("backend");
    let r = simday::run(&day, "postgres", open.db.clone(), &dir, &|l| eprintln!("{l}")).await.unwrap();
    println!(
        "idle_ms {idle}: {} drives, {files} files of 2 GB, one simulated day on postgres: archived {} in {} mounts; \
         queueing {:.1} s wall / {:.1} s CPU; day {:.1} s wall (reports pumped {:.1} s), {:.1} s CPU of this process \
         ({:.0} us CPU per file, the PostgreSQL server's CPU not included)",
        day.drives,
        r.archived,
        r.mounts,
        r.queue_seconds,
        r.queue_cpu_seconds,
        r.run_seconds,
        r.pump_seconds,
        r.run_cpu_seconds,
        r.cpu_per_file_us
    );
    for l in &r.split {
        println!("  {:<13} {:>10} calls {:>9.2} s", l.op, l.calls, l.seconds);
    }
    assert!(r.every_file_once, "every file archived exactly once: {r:?}");
    assert_eq!(r.archived as usize, files);
    open.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

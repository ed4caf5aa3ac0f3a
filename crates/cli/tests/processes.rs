//! The processes mode's pieces as real processes, on objectstore-redis and on PostgreSQL: one
//! producer (`tapesched produce`), one tape daemon (`taped --clock`, the simulated LTO-9 library
//! of compat/mhvtl/lto9) and one maintenance daemon (`maintenance --clock`), all on one scaled
//! clock (one simulated hour in 10 s of wall time) and one shared PostgreSQL catalogue (a schema
//! per test). The producer queues 240 archives in waves over the first simulated half hour, with
//! `file://` report targets; once every report has arrived (a bounded wait on the report file)
//! the daemons get SIGTERM. Every queued archive must be archived and reported exactly once;
//! the run's outcome measures (`tapesched_taped::outcome`) are printed.
//!
//! The same run with the tape daemon killed in the middle of a mount: the first `taped` kills
//! itself (SIGKILL, the failpoint `taped.after_file_written`) once a drive has written a file it
//! has not reported; a second `taped` is started on the same configuration and clock. The
//! maintenance daemon's collector must hand the dead mount's jobs back, the second daemon must
//! start its drives cleanly and write them, and every archive must still be archived and
//! reported exactly once.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tapesched_objectstore::redis_store::{ClearOnDrop, RedisSettings};
use tapesched_postgres::SchemaGuard;
use tapesched_taped::outcome::{measure, parse_lines, parse_summary_total, ReportLine};
use tapesched_taped::replay::Applied;

/// The simulated start: 2026-01-01 00:00 UTC.
const START: i64 = 1_767_225_600;
/// Simulated seconds per wall second: an hour in 10 s.
const FACTOR: u32 = 360;
const WAVES: u64 = 6;
const PER_WAVE: u64 = 40;
/// The longest wait for the run's reports.
const LIMIT: Duration = Duration::from_secs(180);

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tapesched"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn spawn(args: &[&str], config: &Path, clock: &str, dir: &Path, name: &str) -> Child {
    spawn_with(args, config, clock, dir, name, None)
}

/// [`spawn`], with the failpoint `failpoint` armed in the process when given.
fn spawn_with(args: &[&str], config: &Path, clock: &str, dir: &Path, name: &str, failpoint: Option<&str>) -> Child {
    let out = std::fs::File::create(dir.join(format!("{name}.out"))).unwrap();
    let err = std::fs::File::create(dir.join(format!("{name}.err"))).unwrap();
    let mut cmd = bin();
    if let Some(f) = failpoint {
        cmd.env(tapesched_scheduler::failpoint::ENV, f);
    }
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .args(["--clock", clock])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("tapesched runs")
}

fn text(dir: &Path, name: &str) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(dir.join(name)) {
        f.read_to_string(&mut s).unwrap();
    }
    s
}

fn sigterm(child: &Child) {
    // SAFETY: signalling a child we started, by its pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
}

/// Waits for `child` to exit, killing it after `limit`.
fn exit_code(child: &mut Child, limit: Duration, what: &str) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` to be killed by SIGKILL, within `limit`.
fn killed(child: &mut Child, limit: Duration, what: &str) {
    use std::os::unix::process::ExitStatusExt;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.signal(), Some(libc::SIGKILL), "{what} exited with {status}, not killed");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} was not killed within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One run; with `kill`, the first tape daemon kills itself in the middle of a mount and a
/// second one takes over.
fn run(backend: &str, backend_section: &str, db_url: &str, schema: &str, kill: bool) {
    let tag = if kill { "killed" } else { "plain" };
    let dir = std::env::temp_dir().join(format!("processes-{backend}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = bin()
        .args(["catalogue", "load"])
        .arg(root().join("compat/taped/lto9.yml"))
        .args(["--database-url", db_url, "--schema", schema])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "catalogue load: {}", String::from_utf8_lossy(&out.stderr));

    let mut config = format!(
        "{backend_section}\n[catalogue]\npostgres = true\n\n[library]\nkind = \"sim\"\nconfig_dir = \"{}\"\nlibrary_id = 10\n\n",
        root().join("compat/mhvtl/lto9").display()
    );
    for d in 11..=16 {
        config.push_str(&format!("[[drives]]\nname = \"ULT{d}\"\n"));
    }
    // One file for the three processes: the maintenance daemon and the producer ignore the tape
    // server's sections; the maintenance loops run at their default intervals (reports every 10 s).
    config.push_str("\n[intervals]\nidle_ms = 60_000\nheartbeat_ms = 60_000\n");
    // Only the mount policy's minimum request age warrants a mount (a wave's 40 files of 4 GB
    // would otherwise warrant one at once, by files and by bytes).
    config.push_str(
        "\n[scheduler]\nmin_files_to_warrant_mount = 1_000_000\nmin_bytes_to_warrant_mount = 1_000_000_000_000_000\n",
    );
    let config_path = dir.join("taped.toml");
    std::fs::write(&config_path, config).unwrap();

    let reports = dir.join("reports.jsonl");
    let mut events = String::new();
    for w in 0..WAVES {
        let class = if w % 2 == 0 { "sc_pool_a" } else { "sc_pool_b" };
        events.push_str(&format!(
            "{{\"at\":{},\"op\":\"queue_archive\",\"storage_class\":\"{class}\",\"size\":4000000000,\"count\":{PER_WAVE},\"report_url\":\"file://{}\"}}\n",
            START + (w as i64) * 300,
            reports.display()
        ));
    }
    let events_path = dir.join("events.jsonl");
    std::fs::write(&events_path, events).unwrap();

    // The origin a little ahead, so that every process starts before simulated time moves.
    let origin = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() + 1_500;
    let clock = format!("{START},{origin},{FACTOR}");
    let mut maintenance = spawn(&["maintenance"], &config_path, &clock, &dir, "maintenance");
    let failpoint = kill.then_some(tapesched_taped::session::AFTER_FILE_WRITTEN);
    let mut taped = spawn_with(&["taped"], &config_path, &clock, &dir, "taped", failpoint);
    let events_arg = events_path.display().to_string();
    let mut producer = spawn(&["produce", "--events", &events_arg], &config_path, &clock, &dir, "producer");
    if kill {
        // The first daemon dies with a file written and unreported; a second one takes over.
        killed(&mut taped, LIMIT, "the first taped");
        let err = text(&dir, "taped.err");
        assert!(err.contains("failpoint taped.after_file_written"), "{err}");
        assert!(text(&dir, "taped.out").lines().any(|l| l.contains(" mount ")), "it died in a mount");
        taped = spawn(&["taped"], &config_path, &clock, &dir, "taped2");
    }
    let taped_name = if kill { "taped2" } else { "taped" };

    let code = exit_code(&mut producer, LIMIT, "the producer");
    assert_eq!(code, Some(0), "producer: {}", text(&dir, "producer.err"));
    let queued: Vec<Applied> = parse_lines(&text(&dir, "producer.out"), "producer.out").unwrap();
    let n: usize = queued.iter().map(|a| a.requests.len()).sum();
    assert_eq!(n as u64, WAVES * PER_WAVE, "{queued:?}");
    // Each wave applied at (or, if the producer lagged, after) its time, never before.
    for (a, w) in queued.iter().zip(0..) {
        assert_eq!(a.at, START + w * 300);
        assert!(a.time >= a.at, "{a:?}");
    }

    // A bounded wait for the condition: every report delivered (or the daemons gone).
    let deadline = Instant::now() + LIMIT;
    loop {
        let lines = text(&dir, "reports.jsonl").lines().count();
        if lines >= n {
            break;
        }
        let gone = taped.try_wait().unwrap().is_some() || maintenance.try_wait().unwrap().is_some();
        if gone || Instant::now() > deadline {
            sigterm(&taped);
            sigterm(&maintenance);
            panic!(
                "{lines} of {n} reports; taped: {}\n{}\nmaintenance: {}",
                text(&dir, &format!("{taped_name}.out")),
                text(&dir, &format!("{taped_name}.err")),
                text(&dir, "maintenance.err")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    sigterm(&taped);
    sigterm(&maintenance);
    let taped_code = exit_code(&mut taped, LIMIT, "taped");
    let maintenance_code = exit_code(&mut maintenance, LIMIT, "maintenance");
    let taped_out = text(&dir, &format!("{taped_name}.out"));
    assert_eq!(taped_code, Some(130), "{taped_out}\n{}", text(&dir, &format!("{taped_name}.err")));
    assert_eq!(maintenance_code, Some(0), "{}", text(&dir, "maintenance.err"));
    assert!(taped_out.lines().any(|l| l == "SIGTERM: draining"), "{taped_out}");
    assert_eq!(taped_out.lines().filter(|l| l.starts_with("ULT1") && l.contains("Shutdown")).count(), 6, "{taped_out}");

    let report_lines: Vec<ReportLine> = parse_lines(&text(&dir, "reports.jsonl"), "reports.jsonl").unwrap();
    let totals = parse_summary_total(&taped_out).expect("the summary's total line");
    let end = report_lines.iter().map(|r| r.time).max().unwrap();
    let outcome = measure(&queued, &report_lines, &totals, START, end);
    println!("{backend}: {outcome:?}");
    assert!(outcome.exactly_once(), "{outcome:?}");
    assert_eq!((outcome.queued, outcome.succeeded, outcome.failed), (n as u64, n as u64, 0));
    assert_eq!((totals.archived, totals.failed, totals.drive_errors), (n as u64, 0, 0), "{taped_out}");
    assert!(report_lines.iter().all(|r| r.kind == "archive" && r.outcome == "success"));
    assert!(outcome.mounts > 0 && outcome.files_per_mount > 0.0);
    assert_eq!(outcome.archive_latency.count, n as u64, "{outcome:?}");
    // No mount starts before the mount policy's minimum request age (300 s): a request of the
    // first two waves (one per pool, nothing of its pool queued before) is reported no earlier.
    // A later wave's request may be taken by a mount of its pool still running, at any age.
    let first_report: std::collections::BTreeMap<&str, i64> =
        report_lines.iter().fold(Default::default(), |mut m, r| {
            let t = m.entry(r.request.as_str()).or_insert(r.time);
            *t = (*t).min(r.time);
            m
        });
    for a in &queued[..2] {
        for r in &a.requests {
            let latency = first_report[r.as_str()] - a.time;
            assert!(latency >= 300, "{r}, queued at {} in wave {}, reported {latency} s later", a.time, a.event);
        }
    }
    if kill {
        // The collector handed the dead mount's jobs back (the written, unreported file's among
        // them), and the catalogue holds each file once: the second daemon wrote them again.
        let maintenance_out = text(&dir, "maintenance.out");
        let requeued: u64 = maintenance_out
            .lines()
            .filter_map(|l| l.strip_prefix("collect: requeued "))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        assert!(requeued > 0, "the dead mount's jobs were collected: {maintenance_out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// [`run`] on PostgreSQL, in a schema of its own (removed at the end).
fn on_postgres(kill: bool) {
    let url = tapesched_testkit::postgres_url().expect("a PostgreSQL server");
    let schema = tapesched_testkit::unique_name("procs");
    let _guard = SchemaGuard::new(url.clone(), schema.clone());
    let section = format!("[backend]\nname = \"postgres\"\ndatabase_url = \"{url}\"\nschema = \"{schema}\"\n");
    run("postgres", &section, &url, &schema, kill);
}

/// [`run`] on objectstore-redis, in a key prefix and a catalogue schema of its own (removed at
/// the end).
fn on_objectstore_redis(kill: bool) {
    let url = tapesched_testkit::postgres_url().expect("a PostgreSQL server");
    let redis = tapesched_testkit::redis_url().expect("a Redis server");
    let name = tapesched_testkit::unique_name("procs");
    let prefix = format!("{name}:");
    let _guard = SchemaGuard::new(url.clone(), name.clone());
    let _clear = ClearOnDrop(RedisSettings::new(redis.clone(), prefix.clone()));
    let section = format!(
        "[backend]\nname = \"objectstore-redis\"\nredis_url = \"{redis}\"\nredis_prefix = \"{prefix}\"\ndatabase_url = \"{url}\"\nschema = \"{name}\"\n"
    );
    run("objectstore-redis", &section, &url, &name, kill);
}

#[test]
fn processes_on_a_scaled_clock_archive_everything_once_on_postgres() {
    on_postgres(false);
}

#[test]
fn processes_on_a_scaled_clock_archive_everything_once_on_objectstore_redis() {
    on_objectstore_redis(false);
}

#[test]
fn a_tape_daemon_killed_in_a_mount_is_collected_and_replaced_on_postgres() {
    on_postgres(true);
}

#[test]
fn a_tape_daemon_killed_in_a_mount_is_collected_and_replaced_on_objectstore_redis() {
    on_objectstore_redis(true);
}

/// Bad input to the processes mode exits 2 with what is wrong (no server needed: each is refused
/// before a backend is opened).
#[test]
fn bad_clocks_events_and_backends_exit_2_naming_the_problem() {
    let dir = std::env::temp_dir().join(format!("processes-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let example = root().join("compat/taped/sim.toml");
    let run = |args: &[&str]| {
        let out = bin().args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let config = example.display().to_string();
    let (code, err) = run(&["taped", "--config", &config, "--clock", "1767225600,0,fast"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad clock factor \"fast\""), "{err}");
    let (code, err) = run(&["taped", "--config", &config, "--clock", "1,2,3", "--simulate-for", "1h"]);
    assert_eq!(code, Some(2), "{err}");
    // The example queues a [workload] and runs on objectstore-memory: refused with --clock.
    let (code, err) = run(&["taped", "--config", &config, "--clock", "1,2,3"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("[workload] is not played with --clock"), "{err}");
    let no_workload = std::fs::read_to_string(&example).unwrap();
    let no_workload = &no_workload[..no_workload.find("[workload]").unwrap()];
    let path = dir.join("memory.toml");
    std::fs::write(
        &path,
        no_workload
            .replace("../mhvtl/lto9", &root().join("compat/mhvtl/lto9").display().to_string())
            .replace("\"lto9.yml\"", &format!("\"{}\"", root().join("compat/taped/lto9.yml").display())),
    )
    .unwrap();
    let memory = path.display().to_string();
    let (code, err) = run(&["taped", "--config", &memory, "--clock", "1,2,3"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("objectstore-memory lives in one process"), "{err}");

    let events = dir.join("events.jsonl");
    std::fs::write(&events, "{\"at\":1,\"op\":\"queue_retrieve\",\"archive_file_id\":1}\n{\"at\":2,\"op\":\"fly\"}\n")
        .unwrap();
    let redis = memory.replace("memory.toml", "redis.toml");
    std::fs::write(
        &redis,
        std::fs::read_to_string(&path).unwrap().replace("\"objectstore-memory\"", "\"objectstore-redis\""),
    )
    .unwrap();
    let events_arg = events.display().to_string();
    let (code, err) = run(&["produce", "--config", &redis, "--events", &events_arg, "--clock", "1,2,3"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("events.jsonl:2: unknown variant `fly`"), "{err}");
    let (code, err) = run(&["produce", "--config", &memory, "--events", &events_arg, "--clock", "1,2,3"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("objectstore-memory lives in one process"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

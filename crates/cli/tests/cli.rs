//! Runs the `tapesched` binary on the contract's examples and on broken input, checking exit
//! statuses, the closing `N passed, M failed` line and the trace file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tapesched(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tapesched")).args(args).output().expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn last_line(o: &Output) -> String {
    stdout(o).lines().last().unwrap_or("").to_string()
}

/// The contract's examples, as the repository holds them (`compat/examples`).
fn examples() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../compat/examples");
    assert!(dir.is_dir(), "{} is part of the repository", dir.display());
    dir
}

/// A fresh temporary directory for one test.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tapesched-cli-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

const VALID: &str = "version: 1
name: tiny
catalogue:
  disk_instances: [eos]
  virtual_organizations: [{name: vo, read_max_drives: 1, write_max_drives: 1}]
  logical_libraries: [{name: lib}]
  tape_pools: [{name: pool, vo: vo}]
  drives: [{name: drive0, logical_library: lib}]
steps:
  - {op: show_queues, expect: {queues: []}}
  - {op: next_mount, drive: drive0, dry_run: true, expect: {would_mount: false}}
  - {op: set_vo, name: nobody, read_max_drives: 1, expect: {error: not_found}}
";

#[test]
fn examples_pass_and_write_a_trace() {
    let dir = examples();
    let tmp = temp_dir("examples");
    let trace = tmp.join("trace.jsonl");
    let dir = dir.to_string_lossy().into_owned();
    let trace_arg = trace.to_string_lossy().into_owned();
    let out = tapesched(&["scenario", "run", &dir, "--backend", "objectstore-memory", "--trace", &trace_arg]);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{}\nstderr:\n{}", stdout(&out), stderr(&out));
    assert_eq!(last_line(&out), "14 passed, 0 failed");
    let text = std::fs::read_to_string(&trace).expect("trace written");
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    assert_eq!(lines.len(), 21, "11 + 10 steps");
    assert_eq!(lines[0]["step"], 1);
    assert!(lines.iter().all(|l| l["ok"] == true && l.get("file").is_some()));
}

#[test]
fn examples_compare_equal_on_one_backend_twice() {
    let dir = examples();
    let dir = dir.to_string_lossy().into_owned();
    let out = tapesched(&["scenario", "compare", &dir, "--backends", "objectstore-memory,objectstore-memory"]);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{}\nstderr:\n{}", stdout(&out), stderr(&out));
    assert!(last_line(&out).contains("identical traces"), "{}", stdout(&out));
}

#[test]
fn the_bridge_gives_the_legacy_trace_in_every_stage() {
    let dir = examples().to_string_lossy().into_owned();
    let tmp = temp_dir("bridge");
    let trace_of = |backend: &str, file: &str| {
        let path = tmp.join(file).to_string_lossy().into_owned();
        let out = tapesched(&["scenario", "run", &dir, "--backend", backend, "--trace", &path]);
        assert_eq!(out.status.code(), Some(0), "{backend}: stdout:\n{}\nstderr:\n{}", stdout(&out), stderr(&out));
        assert_eq!(last_line(&out), "14 passed, 0 failed", "{backend}");
        std::fs::read_to_string(&path).expect("trace written")
    };
    let legacy = trace_of("objectstore-memory", "legacy.jsonl");
    for stage in ["dual-write", "shadow", "live", "complete"] {
        let bridge = format!("bridge:objectstore-memory:postgres:{stage}");
        assert_eq!(trace_of(&bridge, &format!("{stage}.jsonl")), legacy, "{bridge}");
    }
}

#[test]
fn a_malformed_bridge_name_exits_2_naming_the_form() {
    let out =
        tapesched(&["scenario", "run", &examples().to_string_lossy(), "--backend", "bridge:objectstore-memory:live"]);
    assert_eq!(out.status.code(), Some(2), "stdout:\n{}\nstderr:\n{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("expected bridge:LEGACY:TARGET:STAGE"), "{}", stderr(&out));
}

#[test]
fn failed_expectation_exits_1() {
    let tmp = temp_dir("failing");
    let file = tmp.join("failing.yaml");
    std::fs::write(&file, VALID.replace("would_mount: false", "would_mount: true")).expect("write");
    let out = tapesched(&["scenario", "run", &file.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{}\nstderr:\n{}", stdout(&out), stderr(&out));
    assert_eq!(last_line(&out), "2 passed, 1 failed");
    assert!(
        stderr(&out).contains(
            "failing.yaml: step 2 (next_mount): expected {\"would_mount\":true}, got {\"would_mount\":false}"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn valid_file_passes() {
    let tmp = temp_dir("valid");
    let file = tmp.join("valid.yaml");
    std::fs::write(&file, VALID).expect("write");
    let out = tapesched(&["scenario", "run", &file.to_string_lossy(), "--backend", "objectstore-memory"]);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{}\nstderr:\n{}", stdout(&out), stderr(&out));
    assert_eq!(last_line(&out), "3 passed, 0 failed");
}

#[test]
fn invalid_file_exits_2_naming_the_field() {
    let tmp = temp_dir("invalid");
    let file = tmp.join("invalid.yaml");
    std::fs::write(
        &file,
        "version: 1\nname: bad\ncatalogue: {}\nsteps:\n  - {op: queue_archive, requester: {name: a, group: b}, storage_class: sc, size: -1}\n",
    )
    .expect("write");
    let out = tapesched(&["scenario", "run", &file.to_string_lossy(), "--backend", "objectstore-memory"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(last_line(&out), "0 passed, 0 failed");
    assert!(stderr(&out).contains("steps/0/size: -1 is less than the minimum of 0"), "{}", stderr(&out));
}

#[test]
fn invalid_file_among_valid_ones_exits_2() {
    let tmp = temp_dir("mixed");
    std::fs::write(tmp.join("a.yaml"), VALID).expect("write");
    std::fs::write(tmp.join("b.yaml"), "version: 1\nname: b\ncatalogue: {}\nsteps: [{op: frobnicate}]\n")
        .expect("write");
    std::fs::write(tmp.join("notes.txt"), "ignored").expect("write");
    let out = tapesched(&["scenario", "run", &tmp.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(last_line(&out), "3 passed, 0 failed");
    assert!(stderr(&out).contains("steps/0/op: unknown op \"frobnicate\""), "{}", stderr(&out));
}

#[test]
fn backends_unknown_or_unavailable_exit_2() {
    let tmp = temp_dir("backends");
    let file = tmp.join("valid.yaml");
    std::fs::write(&file, VALID).expect("write");
    let file = file.to_string_lossy().into_owned();
    let out = tapesched(&["scenario", "run", &file, "--backend", "oracle"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("unknown backend \"oracle\"; known backends: objectstore-memory, objectstore-redis, postgres, bridge:LEGACY:TARGET:STAGE\n"),
        "{}",
        stderr(&out)
    );
    // A bridge needs its two sides and a stage.
    let out = tapesched(&["scenario", "run", &file, "--backend", "bridge"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad bridge backend \"bridge\": no sides and stage; expected bridge:LEGACY:TARGET:STAGE"),
        "{}",
        stderr(&out)
    );
    let out =
        tapesched(&["scenario", "compare", &file, "--backends", "objectstore-memory,bridge:postgres:postgres:live"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("both sides are postgres"), "{}", stderr(&out));
    for help in [&["scenario", "run", "--help"][..], &["scenario", "compare", "--help"], &["explain", "--help"]] {
        assert!(stdout(&tapesched(help)).contains("bridge:LEGACY:TARGET:STAGE"), "{help:?}");
    }
    // A worker's bridge follows the migration record: a fixed stage is refused, naming the form.
    let bridge = "bridge:objectstore-redis:postgres:live";
    let args =
        ["worker", "drive", "--backend", bridge, "--drive", "d0", "--mount-id", "1", "--tape-pool", "p", "--vid", "V"];
    let out = tapesched(&args);
    assert_eq!(out.status.code(), Some(2), "stdout:\n{}\nstderr:\n{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("a worker's bridge is bridge:objectstore-redis:postgres"), "{}", stderr(&out));
}

#[test]
fn an_unreachable_server_fails_at_once_with_its_cause_and_status_2() {
    let tmp = temp_dir("unreachable");
    let file = tmp.join("valid.yaml");
    std::fs::write(&file, VALID).expect("write");
    let file = file.to_string_lossy().into_owned();
    let url = "postgres://postgres@127.0.0.1:1/x";
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tapesched"))
            .args(args)
            .env("TAPESCHED_DATABASE_URL", url)
            .env("TAPESCHED_REDIS_URL", "redis://127.0.0.1:1")
            .output()
            .expect("the binary runs")
    };
    let commands: [&[&str]; 6] = [
        &["scenario", "run", &file, "--backend", "postgres"],
        &["scenario", "run", &file, "--backend", "objectstore-redis"],
        &["db", "migrate"],
        &["db", "collect"],
        &["catalogue", "load", &file],
        &["worker", "drive", "--drive", "d", "--mount-id", "1", "--tape-pool", "p", "--vid", "V"],
    ];
    for args in commands {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("Connection refused"), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("pool timed out"), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn a_huge_one_line_file_is_not_echoed() {
    let tmp = temp_dir("huge");
    let file = tmp.join("huge.yaml");
    std::fs::write(&file, "x".repeat(50_000_000)).expect("write");
    let file = file.to_string_lossy().into_owned();
    for args in [
        &["scenario", "run", &file][..],
        &["explain", "--scenario", &file, "--drive", "d"],
        &["explain", "--catalogue", &file, "--drive", "d"],
    ] {
        let out = tapesched(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stderr.len() < 2000, "{args:?}: {} bytes on stderr", out.stderr.len());
        assert!(stderr(&out).contains("more bytes)"), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn plurals_follow_the_count() {
    let tmp = temp_dir("plurals");
    let file = tmp.join("one.yaml");
    std::fs::write(
        &file,
        "version: 1\nname: one\ncatalogue: {}\nsteps:\n  - {op: show_queues, expect: {queues: []}}\n",
    )
    .expect("write");
    let file = file.to_string_lossy().into_owned();
    let out = tapesched(&["scenario", "run", &file]);
    assert!(stdout(&out).contains("(1 checked step)"), "{}", stdout(&out));
    let out = tapesched(&["scenario", "compare", &file, "--backends", "objectstore-memory,objectstore-memory"]);
    assert!(stdout(&out).contains("(1 step)"), "{}", stdout(&out));
    assert!(last_line(&out).starts_with("1 file, 1 step: identical traces"), "{}", stdout(&out));
}

#[test]
fn explain_prints_a_table_and_json() {
    let tmp = temp_dir("explain");
    let file = tmp.join("s.yaml");
    std::fs::write(&file, VALID).expect("write");
    let file = file.to_string_lossy().into_owned();
    let out = tapesched(&["explain", "--scenario", &file, "--drive", "drive0", "--after-step", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Decision: no mount"), "{}", stdout(&out));
    let out = tapesched(&["explain", "--scenario", &file, "--drive", "drive0", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["mount"], serde_json::Value::Null);
    assert_eq!(v["candidates"], serde_json::json!([]));
    let out = tapesched(&["explain", "--scenario", &file, "--drive", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let catalogue = tmp.join("catalogue.yaml");
    std::fs::write(
        &catalogue,
        "virtual_organizations: [{name: vo, read_max_drives: 1, write_max_drives: 1}]\nlogical_libraries: [{name: lib, disabled: true}]\ndrives: [{name: drive0, logical_library: lib}]\n",
    )
    .expect("write");
    let out = tapesched(&["explain", "--catalogue", &catalogue.to_string_lossy(), "--drive", "drive0"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("logical library lib (disabled)"), "{}", stdout(&out));
}

#[test]
fn explain_needs_a_file_and_names_both_options() {
    let out = tapesched(&["explain", "--drive", "drive0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--scenario") && stderr(&out).contains("--catalogue"), "{}", stderr(&out));
}

#[test]
fn explain_stops_before_the_first_drive_op_and_takes_a_scenario_as_catalogue() {
    let example = examples().join("archive-single-copy.yaml");
    let example = example.to_string_lossy().into_owned();
    // By default, the queues as the drive found them at its first next_mount (step 6): three
    // files queued, a mount chosen.
    let out = tapesched(&["explain", "--scenario", &example, "--drive", "drive0", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["steps_played"], 5);
    assert_eq!(v["steps"], 11);
    assert_eq!(v["mount"]["vid"], "V00002");
    assert_eq!(v["candidates"][0]["files_queued"], 3, "{v}");
    let out = tapesched(&["explain", "--scenario", &example, "--drive", "drive0"]);
    assert!(stdout(&out).contains("After step 5 of 11: the steps before the scenario's first drive operation"));
    // The whole scenario on request: the queue is empty again.
    let out = tapesched(&["explain", "--scenario", &example, "--drive", "drive0", "--after-step", "11", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["candidates"], serde_json::json!([]));
    // A scenario file as a catalogue, as `catalogue load` takes it: no steps played.
    let out = tapesched(&["explain", "--catalogue", &example, "--drive", "drive0"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Decision: no mount"), "{}", stdout(&out));
}

//! `tapesched scenario compare --report DIR` on compat scenarios, objectstore-memory against
//! PostgreSQL (each run of the binary works in a namespace of its own, removed afterwards):
//! both files are written, the HTML fetches nothing, and the counts in report.md are those of
//! the traces of `scenario run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tapesched(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tapesched")).args(args).output().expect("the binary runs")
}

fn show(o: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tapesched-cli-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn scenarios() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../compat/scenarios");
    ["decision/explain-full.yaml", "archive/single-copy-fifo.yaml", "admin/unknown-objects-not-found.yaml"]
        .iter()
        .map(|f| {
            let p = root.join(f);
            assert!(p.is_file(), "{} is part of the repository", p.display());
            p.to_string_lossy().into_owned()
        })
        .collect()
}

/// Per op kind, from a trace: (steps, steps whose result is an error).
fn counts_of_trace(trace: &str) -> BTreeMap<String, (u64, u64)> {
    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for line in trace.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
        let c = counts.entry(v["op"].as_str().expect("op").to_string()).or_default();
        c.0 += 1;
        c.1 += u64::from(v["result"].get("error").is_some());
    }
    counts
}

/// The cells of the rows of the report's first table (per operation), by op.
fn op_rows(md: &str) -> BTreeMap<String, Vec<String>> {
    let section = md.split("## Per operation").nth(1).expect("per-operation section");
    let section = section.split("\n## ").next().expect("section");
    section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| operation"))
        .map(|l| {
            let cells: Vec<String> = l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect();
            (cells[0].clone(), cells[1..].to_vec())
        })
        .collect()
}

#[test]
fn compare_writes_a_report_whose_counts_are_the_traces() {
    let files = scenarios();
    let tmp = temp_dir("compare-report");
    let mut traces = Vec::new();
    for backend in ["objectstore-memory", "postgres"] {
        let trace = tmp.join(format!("{backend}.jsonl")).to_string_lossy().into_owned();
        let mut args = vec!["scenario", "run"];
        args.extend(files.iter().map(String::as_str));
        args.extend(["--backend", backend, "--trace", &trace]);
        let out = tapesched(&args);
        assert_eq!(out.status.code(), Some(0), "{backend}: {}", show(&out));
        traces.push(counts_of_trace(&std::fs::read_to_string(&trace).expect("trace")));
    }
    let dir = tmp.join("report/nested");
    let dir_arg = dir.to_string_lossy().into_owned();
    let mut args = vec!["scenario", "compare"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--backends", "objectstore-memory,postgres", "--report", &dir_arg]);
    let out = tapesched(&args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().last().is_some_and(|l| l.contains("identical traces")), "{}", show(&out));

    let md = std::fs::read_to_string(dir.join("report.md")).expect("report.md written");
    let html = std::fs::read_to_string(dir.join("report.html")).expect("report.html written");
    for attr in ["src=\"http", "href=\"http", "src='http", "href='http", "url(http", "@import", "<script"] {
        assert!(!html.to_lowercase().contains(attr), "report.html is self-contained: {attr}");
    }
    assert!(html.contains("<svg"), "charts are inline SVG");
    for f in &files {
        assert!(md.contains(f.as_str()), "the context names {f}");
    }

    let rows = op_rows(&md);
    assert_eq!(traces[0].keys().collect::<Vec<_>>(), rows.keys().collect::<Vec<_>>(), "{md}");
    for (op, cells) in &rows {
        let (steps, mem_errors) = traces[0][op];
        let (_, pg_errors) = traces[1][op];
        // calls, compared, matched, mismatched, ignored, match rate, errors per backend.
        let expected = [steps.to_string(), steps.to_string(), steps.to_string(), "0".into(), "0".into()];
        assert_eq!(&cells[..5], &expected, "{op}: {cells:?}");
        assert_eq!(cells[5], "100.0 %", "{op}");
        assert_eq!((&cells[6], &cells[7]), (&mem_errors.to_string(), &pg_errors.to_string()), "{op}");
    }
    let total: u64 = traces[0].values().map(|c| c.0).sum();
    assert!(md.contains(&format!("Compared {total}: matched {total} (100.0 %), mismatched 0")), "{md}");
    // Every step timed once on each backend.
    let latency = md.split("## Latency per side").nth(1).expect("latency section");
    for (op, (steps, _)) in &traces[0] {
        for backend in ["objectstore-memory", "postgres"] {
            let prefix = format!("| {op} | {backend} | {steps} | {steps} |");
            assert!(latency.contains(&prefix), "{prefix}\n{latency}");
        }
    }
    assert!(md.contains("## Mismatches (0)") && md.contains("(no mismatches)"), "{md}");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_report_directory_that_cannot_be_made_exits_2_before_running() {
    let tmp = temp_dir("compare-report-bad-dir");
    let file = tmp.join("blocker");
    std::fs::write(&file, "a file, not a directory").expect("write");
    let dir = file.join("report").to_string_lossy().into_owned();
    let scenario = &scenarios()[0];
    let out = tapesched(&[
        "scenario",
        "compare",
        scenario,
        "--backends",
        "objectstore-memory,objectstore-memory",
        "--report",
        &dir,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot create the report directory"), "{}", show(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("SAME"), "nothing ran");
    let _ = std::fs::remove_dir_all(&tmp);
}

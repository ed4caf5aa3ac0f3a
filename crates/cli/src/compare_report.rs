//! The report of `tapesched scenario compare --report DIR`: the traces of every file on every
//! backend, compared step by step, as a [`Report`] of `tapesched-report`.
//!
//! The first backend is the reference; a step matches when its `op`, `ok` and `result` (the
//! fields `scenario compare` diffs) are the same on every backend, and is a mismatch otherwise
//! (a step missing from a backend's trace included). Steps are "calls" of their op kind; every
//! step is compared, nothing is ignored. Errors per backend count the steps whose result is an
//! error. Latencies are each step's wall time on each backend ([`RunReport::durations`]).
//! The timeline places mismatched steps at their scenario offset `at` (each file from 0). A
//! mismatched decision step (`next_mount`, dry run or not, and `explain_mount`) carries each
//! backend's explanation in `tapesched explain`'s form, computed by [`explain_mismatches`]:
//! the file is played again on a fresh instance up to the step before, as
//! `tapesched explain --after-step` does, so the compared run is never disturbed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tapesched_report::explain::{clip, decision_text, pretty_json};
use tapesched_report::{LatencyDist, Mismatch, OpRow, Report, Timeline};
use tapesched_scenario::model::Op;
use tapesched_scenario::runner::explain_after;
use tapesched_scenario::{Backend, RunReport, Scenario, StepRecord};

/// One file, run on every backend.
pub struct FileRuns {
    /// The file.
    pub path: PathBuf,
    /// The file as shown.
    pub name: String,
    /// Its scenario.
    pub scenario: Scenario,
    /// One run per backend, in the order of the command line.
    pub runs: Vec<RunReport>,
    /// Explanations of mismatched decision steps: (0-based step, backend index) -> text.
    pub explanations: BTreeMap<(usize, usize), String>,
}

/// The fields `scenario compare` diffs.
fn compared(r: &StepRecord) -> (&str, bool, &Value) {
    (&r.op, r.ok, &r.result)
}

/// The 0-based steps of `runs` whose record differs between backends (or is missing on one).
pub fn mismatched_steps(runs: &[RunReport]) -> Vec<usize> {
    let n = runs.iter().map(|r| r.records.len()).max().unwrap_or(0);
    (0..n)
        .filter(|&i| {
            let reference = runs.first().and_then(|r| r.records.get(i));
            !runs.iter().all(|r| match (reference, r.records.get(i)) {
                (Some(a), Some(b)) => compared(a) == compared(b),
                _ => false,
            })
        })
        .collect()
}

/// The drive a decision step asks about, if the step is one.
fn decision_drive(op: &Op) -> Option<&str> {
    match op {
        Op::NextMount { drive, .. } | Op::ExplainMount { drive } => Some(drive),
        _ => None,
    }
}

/// Explains, on every backend, each mismatched decision step of `file` (played again on a fresh
/// instance up to the step before); a failure to explain is shown in its place.
pub async fn explain_mismatches(file: &mut FileRuns, backends: &[Backend]) {
    for i in mismatched_steps(&file.runs) {
        let Some(drive) = file.scenario.steps.get(i).and_then(|s| decision_drive(&s.op)).map(str::to_string) else {
            continue;
        };
        for (k, backend) in backends.iter().enumerate() {
            let text = match explain_after(&file.path, &file.scenario, *backend, i, &drive).await {
                Ok(d) => decision_text(&d),
                Err(e) => format!("(cannot explain: {e})"),
            };
            file.explanations.insert((i, k), text);
        }
    }
}

/// What a step concerned, from its fields.
fn concerns_of(op: &Op) -> String {
    match op {
        Op::SetVo { name, .. }
        | Op::SetMountPolicy { name, .. }
        | Op::DeleteMountPolicy { name }
        | Op::SetLogicalLibrary { name, .. }
        | Op::SetPhysicalLibrary { name, .. }
        | Op::SetDiskSystem { name, .. } => format!("{} {name}", op.name().trim_start_matches("set_")),
        Op::AddTape(t) => format!("tape {}", t.vid),
        Op::SetTape { vid, .. }
        | Op::ChangeTapeState { vid, .. }
        | Op::QueueRepack { vid, .. }
        | Op::CancelRepack { vid } => format!("tape {vid}"),
        Op::SetDrive { drive, .. }
        | Op::NextMount { drive, .. }
        | Op::ExplainMount { drive }
        | Op::PopJobs { drive, .. }
        | Op::CompleteJobs { drive, .. }
        | Op::EndMount { drive }
        | Op::CrashDrive { drive } => format!("drive {drive}"),
        Op::QueueArchive { archive_file_id: Some(id), storage_class, .. } => {
            format!("archive file {id} (storage class {storage_class})")
        }
        Op::QueueArchive { storage_class, .. } => format!("a new archive file (storage class {storage_class})"),
        Op::QueueRetrieve { archive_file_id, .. }
        | Op::CancelArchive { archive_file_id }
        | Op::CancelRetrieve { archive_file_id, .. } => format!("archive file {archive_file_id}"),
        Op::ListPending { tape_pool, vid, .. } => match (tape_pool, vid) {
            (Some(p), _) => format!("pool {p}"),
            (None, Some(v)) => format!("tape {v}"),
            (None, None) => "every queue".into(),
        },
        _ => "-".into(),
    }
}

/// A backend's record of a step, as shown: the compared fields, then the message (not compared).
fn answer_of(record: Option<&StepRecord>) -> String {
    match record {
        None => "(no such step: the trace is shorter)".to_string(),
        Some(r) => {
            let mut text = pretty_json(&json!({"op": r.op, "ok": r.ok, "result": r.result}));
            if let Some(m) = &r.message {
                text.push_str(&format!("\nmessage (not compared): {}", clip(m)));
            }
            text
        }
    }
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The report of `files` compared on `backends` (names in command-line order); `notes` are
/// extra context lines (bridge divergences...).
pub fn build(backends: &[String], files: &[FileRuns], notes: &[String]) -> Report {
    let sides = backends.len();
    let mut rows: BTreeMap<String, OpRow> = BTreeMap::new();
    let mut samples: BTreeMap<String, Vec<Vec<u64>>> = BTreeMap::new();
    let mut events = Vec::new();
    let mut mismatches = Vec::new();
    for file in files {
        let bad = mismatched_steps(&file.runs);
        let n = file.runs.iter().map(|r| r.records.len()).max().unwrap_or(0);
        for i in 0..n {
            let records: Vec<Option<&StepRecord>> = file.runs.iter().map(|r| r.records.get(i)).collect();
            let Some(first) = records.iter().flatten().next() else { continue };
            let op = first.op.clone();
            let row = rows.entry(op.clone()).or_insert_with(|| OpRow::new(op.clone(), sides));
            let lat = samples.entry(op.clone()).or_insert_with(|| vec![Vec::new(); sides]);
            row.calls += 1;
            row.compared += 1;
            let mismatched = bad.binary_search(&i).is_ok();
            if mismatched {
                row.mismatched += 1;
            } else {
                row.matched += 1;
            }
            for (k, (record, run)) in records.iter().zip(&file.runs).enumerate().take(sides) {
                if record.is_some_and(|r| r.result.get("error").is_some()) {
                    row.errors[k] += 1;
                }
                if let Some(d) = run.durations.get(i) {
                    lat[k].push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
                }
            }
            if !mismatched {
                continue;
            }
            let at = first.at;
            events.push((i64::try_from(at).unwrap_or(i64::MAX), op.clone()));
            let differing: Vec<&str> = records
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(_, r)| match (records[0], r) {
                    (Some(a), Some(b)) => compared(a) != compared(b),
                    _ => true,
                })
                .map(|(k, _)| backends[k].as_str())
                .collect();
            let answers = records
                .iter()
                .enumerate()
                .map(|(k, r)| {
                    let mut text = answer_of(*r);
                    if let Some(e) = file.explanations.get(&(i, k)) {
                        text.push_str(&format!("\n\nExplanation (tapesched explain --after-step {i}):\n{e}"));
                    }
                    text
                })
                .collect();
            mismatches.push(Mismatch {
                op,
                when: format!("{} step {} (t = +{at} s)", file.name, i + 1),
                concerns: file.scenario.steps.get(i).map_or("-".into(), |s| concerns_of(&s.op)),
                note: Some(format!("differs from the reference {}: {}", backends[0], differing.join(", "))),
                ignored_by: None,
                answers,
            });
        }
    }
    for (op, lat) in samples {
        if let Some(row) = rows.get_mut(&op) {
            row.latency = lat.iter().map(|s| LatencyDist::from_samples(s)).collect();
        }
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let steps: usize = files.iter().map(|f| f.scenario.steps.len()).sum();
    let mut context = vec![
        format!("tapesched scenario compare on {}, {}", backends.join(", "), utc(now)),
        format!(
            "{} files, {steps} steps; reference {}: a step matches when op, ok and result are equal on every backend (messages and timings are not compared)",
            files.len(),
            backends.first().map_or("-", String::as_str)
        ),
        "latency: each step's wall time on each backend (std::time::Instant), measured and reported, never compared".into(),
    ];
    context.extend(files.iter().map(|f| format!("file {} ({} steps)", f.name, f.scenario.steps.len())));
    context.extend(notes.iter().cloned());
    Report {
        title: format!("Scenario comparison: {}", backends.join(" vs ")),
        context,
        sides: backends.to_vec(),
        ops: rows.into_values().collect(),
        timeline: Timeline::from_events(
            "s of scenario time, the step's offset at; every file from 0",
            Some(0),
            events,
            Timeline::MAX_BUCKETS,
        ),
        mismatches,
        ignored: vec![],
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SCENARIO: &str = "version: 1
name: t
catalogue:
  logical_libraries: [{name: lib}]
  drives: [{name: drive0, logical_library: lib}]
steps:
  - {op: show_queues}
  - {at: 30, op: next_mount, drive: drive0}
  - {op: show_queues}
";

    fn rec(step: usize, at: u64, op: &str, result: Value) -> StepRecord {
        StepRecord { step, at, op: op.into(), result, ok: true, mismatch: None, message: None, checked: false }
    }

    fn run(mount: Value, last: Option<Value>, micros: u64) -> RunReport {
        let mut records =
            vec![rec(1, 0, "show_queues", json!({"queues": []})), rec(2, 30, "next_mount", json!({"mount": mount}))];
        if let Some(l) = last {
            records.push(rec(3, 30, "show_queues", l));
        }
        let durations = records.iter().map(|_| Duration::from_micros(micros)).collect();
        RunReport { records, divergences: vec![], durations }
    }

    #[test]
    fn counts_mismatches_per_op_with_both_answers_and_explanations() {
        let dir = std::env::temp_dir().join(format!("tapesched-compare-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("t.yaml");
        std::fs::write(&path, SCENARIO).expect("write");
        let scenario = tapesched_scenario::load_scenario(&path).expect("scenario");
        let mut explanations = BTreeMap::new();
        explanations.insert((1, 0), "Decision: mount A".to_string());
        explanations.insert((1, 1), "Decision: mount <B>".to_string());
        let file = FileRuns {
            path: path.clone(),
            name: "t.yaml".into(),
            scenario,
            runs: vec![
                run(json!({"vid": "V1"}), Some(json!({"error": "not_found"})), 10),
                run(json!({"vid": "V2"}), None, 2000),
            ],
            explanations,
        };
        assert_eq!(mismatched_steps(&file.runs), vec![1, 2]);
        let r = build(&["a".into(), "b".into()], &[file], &[]);
        let sq = r.ops.iter().find(|o| o.op == "show_queues").expect("row");
        assert_eq!((sq.calls, sq.compared, sq.matched, sq.mismatched, sq.errors.clone()), (2, 2, 1, 1, vec![1, 0]));
        assert_eq!((sq.latency[0].count, sq.latency[1].count, sq.latency[1].p50_micros), (2, 1, 2000));
        let nm = r.ops.iter().find(|o| o.op == "next_mount").expect("row");
        assert_eq!((nm.matched, nm.mismatched), (0, 1));
        assert_eq!(r.mismatches.len(), 2);
        let m = &r.mismatches[0];
        assert_eq!((m.when.as_str(), m.concerns.as_str()), ("t.yaml step 2 (t = +30 s)", "drive drive0"));
        assert!(m.answers[0].contains("\"vid\": \"V1\"") && m.answers[0].contains("Decision: mount A"));
        assert!(m.answers[1].contains("\"vid\": \"V2\"") && m.answers[1].contains("Decision: mount <B>"));
        assert!(r.mismatches[1].answers[1].contains("no such step"));
        assert_eq!(r.timeline.total(), 2);
        assert!(r.context.iter().any(|c| c == "file t.yaml (3 steps)"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn mismatched_decisions_are_explained_on_every_backend() {
        let dir = std::env::temp_dir().join(format!("tapesched-compare-explain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("t.yaml");
        std::fs::write(&path, SCENARIO).expect("write");
        let scenario = tapesched_scenario::load_scenario(&path).expect("scenario");
        let mut file = FileRuns {
            path: path.clone(),
            name: "t.yaml".into(),
            scenario,
            runs: vec![run(json!(null), Some(json!({"queues": []})), 1), run(json!({"vid": "V"}), None, 1)],
            explanations: BTreeMap::new(),
        };
        let backends = [Backend::ObjectstoreMemory, Backend::ObjectstoreMemory];
        explain_mismatches(&mut file, &backends).await;
        // Step 2 (next_mount) is explained on both backends; step 3 is no decision.
        assert_eq!(file.explanations.keys().copied().collect::<Vec<_>>(), vec![(1, 0), (1, 1)]);
        for text in file.explanations.values() {
            assert!(text.starts_with("Decision: no mount\n\nCandidates in decision order (0):"), "{text}");
        }
        let r = build(&["a".into(), "b".into()], &[file], &[]);
        assert!(
            r.mismatches[0].answers[1].contains("Explanation (tapesched explain --after-step 1):\nDecision: no mount")
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_764_822_000), "2025-12-04 04:20:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}

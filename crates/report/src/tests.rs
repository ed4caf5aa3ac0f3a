//! Unit tests of the renderer: escaping, ignored differences counted apart, empty input,
//! percentiles, histograms, timelines and the bridge conversion.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tapesched_bridge::{Answer, Concern, Divergence, DivergenceLog, IgnoreRule, Sampling, Side};
use tapesched_scheduler::ErrorKind;

use super::*;
use crate::stats::percentile;

const HOSTILE: &str = "<script>alert('x')</script>";

fn hostile_report() -> Report {
    let mut op = OpRow::new(HOSTILE, 2);
    op.calls = 4;
    op.compared = 4;
    op.matched = 2;
    op.mismatched = 1;
    op.ignored.insert(format!("rule {HOSTILE}"), 1);
    op.latency = vec![LatencyDist::from_samples(&[10, 20, 30]), LatencyDist::from_samples(&[100, 2000])];
    Report {
        title: format!("title {HOSTILE}"),
        context: vec![format!("context {HOSTILE}")],
        sides: vec![format!("side {HOSTILE}"), "b & \"c\"".into()],
        ops: vec![op],
        timeline: Timeline::from_events("s", Some(0), vec![(5, HOSTILE.to_string())], 10),
        mismatches: vec![Mismatch {
            op: HOSTILE.into(),
            when: format!("when {HOSTILE}"),
            concerns: format!("tape {HOSTILE}"),
            note: Some(format!("note {HOSTILE}")),
            ignored_by: None,
            answers: vec![format!("answer {HOSTILE}"), "```\n</pre><script>".into()],
        }],
        ignored: vec![],
    }
}

#[test]
fn hostile_names_render_as_text_in_html() {
    let html = render_html(&hostile_report());
    assert!(!html.to_lowercase().contains("<script"), "{html}");
    assert!(html.contains("<pre>```\n&lt;/pre&gt;&lt;script&gt;</pre>"), "an answer cannot close its block");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(html.contains("b &amp; &quot;c&quot;"));
    for needle in ["http://", "https://", "<link", "<img", "@import", "url("] {
        assert!(!html.contains(needle), "self-contained: {needle}");
    }
}

#[test]
fn hostile_names_are_escaped_in_markdown() {
    let md = render_markdown(&hostile_report());
    // Outside the fenced answers, no raw markup.
    let outside = outside_fences(&md);
    assert!(!outside.replace("\\<", "").contains('<'), "{md}");
    assert!(md.contains("\\<script\\>"), "{md}");
    // The answer holding a fence is put in a longer fence.
    assert!(md.contains("````text\n```\n</pre><script>\n````"), "{md}");
}

#[test]
fn ignored_are_neither_matches_nor_mismatches() {
    let r = hostile_report();
    let md = render_markdown(&r);
    // matched 2 of 4 (50 %), one mismatch, one ignored, each apart.
    assert!(md.contains("Compared 4: matched 2 (50.0 %), mismatched 1 (25.0 %), ignored 1 (25.0 %"), "{md}");
    assert!(md.contains("| 4 | 4 | 2 | 1 | 1 (rule \\<script\\>"), "{md}");
    let html = render_html(&r);
    assert!(html.contains("ignored by a rule<b>1</b>25.0 %"), "{html}");
    assert!(html.contains("mismatched<b>1</b>25.0 %"));
    assert!(html.contains("matched<b>2</b>50.0 %"));
}

#[test]
fn empty_reports_render() {
    let r = Report::default();
    let md = render_markdown(&r);
    assert!(md.contains("(no operations)") && md.contains("(no mismatches)"), "{md}");
    let html = render_html(&r);
    assert!(html.contains("no mismatches") && html.contains("No operations."), "{html}");
    assert_eq!(OpRow::new("x", 2).match_rate(), None);
    let d = LatencyDist::from_samples(&[]);
    assert_eq!((d.count, d.p50_micros, d.max_micros, d.buckets.len()), (0, 0, 0, 0));
    assert!(Timeline::from_events("s", None, Vec::new(), 10).buckets.is_empty());
}

#[test]
fn write_report_creates_the_directory_and_both_files() {
    let dir = std::env::temp_dir().join(format!("tapesched-report-{}", std::process::id())).join("a/b");
    let _ = std::fs::remove_dir_all(&dir);
    let (md, html) = write_report(&dir, &hostile_report()).expect("written");
    assert_eq!(md, dir.join("report.md"));
    assert!(std::fs::read_to_string(&html).expect("html").starts_with("<!DOCTYPE html>"));
    assert!(std::fs::read_to_string(&md).expect("md").starts_with("# title"));
    let _ = std::fs::remove_dir_all(dir.parent().and_then(|p| p.parent()).expect("root"));
}

#[test]
fn percentiles_are_nearest_rank() {
    let samples: Vec<u64> = (1..=200).rev().collect();
    let d = LatencyDist::from_samples(&samples);
    assert_eq!((d.p50_micros, d.p90_micros, d.p99_micros, d.max_micros), (100, 180, 198, 200));
    assert_eq!(percentile(&[7], 99.0), 7);
    assert_eq!(percentile(&[1, 2, 3, 4], 50.0), 2);
    assert_eq!(percentile(&[], 50.0), 0);
    // Histogram: (0,1], (1,2], (2,5], (5,10], ... with every sample in exactly one bucket.
    let d = LatencyDist::from_samples(&[0, 1, 2, 3, 5, 6, 1_000_000_000]);
    let got: Vec<(u64, u64, u64)> = d.buckets.iter().map(|b| (b.lower_micros, b.upper_micros, b.count)).collect();
    assert_eq!(got, vec![(0, 1, 2), (1, 2, 1), (2, 5, 2), (5, 10, 1), (100_000_000, u64::MAX, 1)]);
    let kept = LatencyDist::from_kept_samples(10, 900, &[5, 6]);
    assert_eq!((kept.count, kept.sampled, kept.max_micros), (10, 2, 900));
}

#[test]
fn timeline_buckets_have_round_widths() {
    let events = vec![(3, "a".to_string()), (17, "b".to_string()), (17, "a".to_string()), (95, "a".to_string())];
    let t = Timeline::from_events("s", Some(0), events, 10);
    assert!(t.buckets.len() <= 10);
    let width = t.buckets[0].end - t.buckets[0].start;
    assert_eq!(width, 10);
    assert_eq!(t.total(), 4);
    assert_eq!(t.buckets[1].per_op.get("a"), Some(&1));
    assert_eq!(t.buckets[1].per_op.get("b"), Some(&1));
    assert_eq!(t.ops(), vec!["a".to_string(), "b".to_string()]);
    let t = Timeline::from_events("s", None, vec![(1000, "x".to_string())], 10);
    assert_eq!((t.origin, t.buckets.len(), t.buckets[0].start), (1000, 1, 0));
}

#[test]
fn formats() {
    assert_eq!(format_micros(850), "850 µs");
    assert_eq!(format_micros(1250), "1.25 ms");
    assert_eq!(format_micros(3_400_000), "3.40 s");
    assert_eq!(format_rate(1, 3), "33.3 %");
    assert_eq!(format_rate(0, 0), "-");
}

fn mount_value(vid: &str, files: u64) -> serde_json::Value {
    json!({
        "chosen": {"mount_type": "ArchiveForUser", "vid": vid, "tape_pool": "pool", "vo": "vo", "drive": "d0", "logical_library": "lib"},
        "mount_info": {"potential_mounts": [{
            "mount_type": "ArchiveForUser", "tape_pool": "pool", "vid": null, "files_queued": files, "bytes_queued": 10,
            "oldest_job_start": 1, "youngest_job_start": 2, "priority": 3, "min_request_age": 0,
            "policy_counts": {"mp": files}, "sleep": null
        }]}
    })
}

#[test]
fn a_bridge_log_becomes_a_report() {
    let rule = IgnoreRule::new("ids", "ids differ", |d| d.op == "open_mount");
    let log = DivergenceLog::with(Sampling::default(), vec![rule]);
    for us in [5, 7, 9] {
        log.answered("next_mount", Side::Legacy, Duration::from_micros(us), false);
    }
    log.answered("next_mount", Side::Target, Duration::from_micros(300), true);
    log.matched("next_mount");
    let mut d = Divergence::new(
        "next_mount",
        vec![Concern::Drive("d0".into())],
        Answer::Value(mount_value("V1", 3)),
        Answer::Value(mount_value("V2", 4)),
        1_700_000_010,
    )
    .noted("different mount chosen from different mount info");
    d.stage = tapesched_bridge::Stage::Shadow;
    log.record(d);
    log.record(Divergence::new(
        "open_mount",
        vec![],
        Answer::NotAsked,
        Answer::Error { kind: ErrorKind::Conflict, message: HOSTILE.into() },
        1_700_000_020,
    ));
    let explain = |_: &Divergence, info: &tapesched_scheduler::db::MountInfo| {
        Some(tapesched_scheduler::decision::Decision {
            chosen: None,
            candidates: vec![],
            rejected: vec![tapesched_scheduler::decision::Rejected {
                mount_type: info.potential_mounts[0].mount_type,
                tape_pool: info.potential_mounts[0].tape_pool.clone(),
                vid: None,
                reason: tapesched_scheduler::decision::RejectReason::CriteriaNotMet,
            }],
        })
    };
    let mut builder = bridge::BridgeReport::new("bridge", "objectstore-memory", "postgres");
    builder.explain = Some(&explain);
    let r = builder.from_log(&log);
    assert_eq!(r.sides, vec!["legacy (objectstore-memory)", "target (postgres)"]);
    let nm = r.ops.iter().find(|o| o.op == "next_mount").expect("row");
    assert_eq!((nm.compared, nm.matched, nm.mismatched, nm.errors.clone()), (2, 1, 1, vec![0, 1]));
    assert_eq!((nm.latency[0].count, nm.latency[0].p50_micros, nm.latency[1].max_micros), (3, 7, 300));
    let om = r.ops.iter().find(|o| o.op == "open_mount").expect("row");
    assert_eq!((om.matched, om.mismatched, om.ignored.get("ids")), (0, 0, Some(&1)));
    assert_eq!((r.mismatches.len(), r.ignored.len(), r.timeline.total()), (1, 1, 1));
    let m = &r.mismatches[0];
    assert!(m.answers[0].contains("Chosen: mount ArchiveForUser tape V1 of pool pool"), "{}", m.answers[0]);
    assert!(m.answers[1].contains("tape V2"));
    assert!(m.answers[0].contains("~  ArchiveForUser  pool"), "marked against the other side: {}", m.answers[0]);
    assert!(m.answers[0].contains("Decision: no mount") && m.answers[0].contains("criteria_not_met"));
    assert!(m.when.contains("stage shadow"));
    assert_eq!(r.ignored[0].answers[1], format!("error conflict: {HOSTILE}"));
    assert!(!render_html(&r).contains("<script"));
    // Stored data gives the same report.
    let stored = builder.from_parts(&log.stats(), &log.divergences(), &log.ignored());
    assert_eq!(stored, r);
    let empty = builder.from_parts(&BTreeMap::new(), &[], &[]);
    assert!(empty.ops.is_empty() && empty.timeline.buckets.is_empty());
}

#[test]
fn decision_text_is_explains_form() {
    use tapesched_scheduler::decision::{Candidate, Decision, SkipReason};
    use tapesched_scheduler::types::MountType;
    let d = Decision {
        chosen: None,
        candidates: vec![Candidate {
            mount_type: MountType::Retrieve,
            tape_pool: "p".into(),
            vid: Some("V9".into()),
            priority: 2,
            min_request_age: 0,
            files_queued: 5,
            bytes_queued: 50,
            oldest_job_start: 0,
            vo: "vo".into(),
            selected: false,
            skip_reason: Some(SkipReason::TapeInUse),
        }],
        rejected: vec![],
    };
    assert_eq!(
        explain::decision_text(&d),
        "Decision: no mount\n\nCandidates in decision order (1):\n  #  TYPE      POOL  VID  PRIORITY  FILES  BYTES  SELECTED  SKIP REASON\n  1  Retrieve  p     V9   2         5      50     no        tape_in_use\n\nRejected (0):\n  (none)\n"
    );
    assert_eq!(explain::mount_answer_text(&json!([1]), None), "[\n  1\n]");
}

/// The lines of Markdown `md` outside its fenced blocks, joined.
pub(crate) fn outside_fences(md: &str) -> String {
    let mut fence: Option<String> = None;
    let mut outside = String::new();
    for line in md.lines() {
        match &fence {
            Some(f) if line == f => fence = None,
            Some(_) => {}
            None if line.starts_with("```") => fence = Some(line.trim_end_matches("text").to_string()),
            None => outside.push_str(line),
        }
    }
    outside
}

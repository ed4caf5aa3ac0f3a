//! Unit tests of the end-to-end report on synthetic records: escaping, the verdict, divergences
//! side by side, empty records, downsampling, and a Markdown snapshot.

use super::charts::{downsample, histogram_categories, mean_drives};
use super::*;

const HOSTILE: &str = "<script>alert('x')</script>";

/// A small record of two backends over two hours, deterministic.
fn record(samples: usize) -> E2eRecord {
    let start = 1_764_806_400;
    let backend = |name: &str, k: u64| BackendRun {
        backend: name.to_string(),
        wall_s: 12.5 + k as f64,
        time_split: vec![("queueing".into(), 2.0), ("next_mount".into(), 3.5 + k as f64), ("library".into(), 4.0)],
        totals: Totals {
            archives_queued: 100,
            archived: 100,
            retrieves_queued: 40,
            retrieved: 40 - k,
            mounts: 12 + k,
            bytes: 1 << 30,
            ..Totals::default()
        },
        samples: (0..samples as i64)
            .map(|i| Sample {
                t_s: start + i * 7200 / samples.max(1) as i64,
                queued_archive: (i as u64 * 37) % 50,
                queued_retrieve: (i as u64 * 11) % 20 + k,
                drives_busy: (i % 4) as u32,
                drives_up: 4,
                mounts: i as u64 / 3,
                done: i as u64 * 2,
            })
            .collect(),
        archive_latency: LatencySummary {
            count: 100,
            p50_s: 60.0,
            p90_s: 300.0,
            p99_s: 900.0,
            max_s: 1200.0,
            histogram: vec![(60.0, 50), (300.0, 40), (1200.0, 10)],
        },
        retrieve_latency: LatencySummary::default(),
        invariants: vec![InvariantCheck {
            name: "every request done exactly once".into(),
            ok: true,
            detail: "140 of 140".into(),
        }],
    };
    E2eRecord {
        workload: "mixed-small".into(),
        workload_file: "workloads/mixed-small.yaml".into(),
        seed: 42,
        mode: "lockstep".into(),
        library: "sim (compat/mhvtl)".into(),
        drives: 4,
        tapes: 20,
        start_s: start,
        end_s: start + 7200,
        context: vec!["cargo xtask e2e --workload mixed-small".into()],
        backends: vec![backend("objectstore-redis", 0), backend("postgres", 1)],
        decisions: DecisionTally { compared: 30, matched: 30, mounts_chosen: 12 },
        divergences: vec![],
        tolerances: vec![],
    }
}

fn hostile_record() -> E2eRecord {
    let mut r = record(20);
    r.workload = format!("w {HOSTILE}");
    r.workload_file = format!("{HOSTILE}.yaml");
    r.library = format!("lib {HOSTILE}");
    r.context = vec![format!("ctx {HOSTILE}")];
    r.backends[0].backend = format!("b {HOSTILE}");
    r.backends[1].backend = "p & \"q\"".into();
    r.backends[0].time_split.push((format!("part {HOSTILE}"), 1.0));
    r.backends[0].invariants.push(InvariantCheck {
        name: format!("inv {HOSTILE}"),
        ok: false,
        detail: format!("first offender {HOSTILE}"),
    });
    r.tolerances.push(ToleranceCheck {
        measure: format!("m {HOSTILE}"),
        values: vec![1.0, f64::NAN],
        tolerance: format!("within {HOSTILE}"),
        ok: false,
    });
    r.divergences.push(Divergence {
        t_s: r.start_s + 1800,
        concerns: format!("drive {HOSTILE}"),
        what: format!("chosen mount {HOSTILE}"),
        answers: vec![format!("ArchiveForUser V1 {HOSTILE}"), "```\n</pre><script>".into()],
    });
    r
}

#[test]
fn hostile_names_render_as_text_in_html() {
    let html = render_html(&hostile_record());
    assert!(!html.to_lowercase().contains("<script"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(html.contains("p &amp; &quot;q&quot;"));
    assert!(html.contains("<pre>```\n&lt;/pre&gt;&lt;script&gt;</pre>"), "an answer cannot close its block");
    for needle in ["http://", "https://", "<link", "<img", "@import", "url(", "<script"] {
        assert!(!html.contains(needle), "self-contained: {needle}");
    }
}

#[test]
fn hostile_names_are_escaped_in_markdown() {
    let md = render_markdown(&hostile_record());
    let outside = crate::tests::outside_fences(&md);
    assert!(!outside.replace("\\<", "").contains('<'), "{md}");
    assert!(md.contains("b \\<script\\>"), "{md}");
    assert!(md.contains("````text\n```\n</pre><script>\n````"), "{md}");
}

#[test]
fn the_verdict_comes_first_and_names_what_failed() {
    let ok = record(10);
    assert!(ok.passed());
    let html = render_html(&ok);
    let verdict = html.find("<div class=\"verdict pass\"><b>PASS</b>").expect("a PASS banner");
    assert!(verdict < html.find("<h2>").expect("sections"), "the verdict is above every section");
    assert!(render_markdown(&ok).contains("**Verdict: PASS**"));

    let mut bad = record(10);
    bad.backends[1].invariants[0].ok = false;
    bad.tolerances.push(ToleranceCheck {
        measure: "mounts per hour".into(),
        values: vec![6.0, 9.0],
        tolerance: "within 10 %".into(),
        ok: false,
    });
    let html = render_html(&bad);
    assert!(html.contains("<div class=\"verdict fail\"><b>FAIL</b>"), "{html}");
    assert!(html.contains("<li>invariant failed on postgres: every request done exactly once</li>"), "{html}");
    assert!(html.contains("<li>tolerance failed: mounts per hour (within 10 %)</li>"), "{html}");
    assert!(html.contains("<td class=\"bad\">FAILED</td>"), "{html}");
    let md = render_markdown(&bad);
    assert!(
        md.contains(
            "**Verdict: FAIL**\n\n- tolerance failed: mounts per hour (within 10 %)\n- invariant failed on postgres"
        ),
        "{md}"
    );
    assert!(md.contains("| every request done exactly once | ok: 140 of 140 | **FAILED**: 140 of 140 |"), "{md}");

    let mut diverged = record(10);
    diverged.divergences.push(Divergence {
        t_s: diverged.start_s,
        concerns: "drive0".into(),
        what: "x".into(),
        answers: vec![],
    });
    assert_eq!(Verdict::of(&diverged), Verdict::Fail(vec!["1 divergence between the backends".into()]));
    let many = E2eRecord {
        tolerances: (0..15).map(|i| ToleranceCheck { measure: format!("m{i}"), ..ToleranceCheck::default() }).collect(),
        ..record(0)
    };
    match Verdict::of(&many) {
        Verdict::Fail(reasons) => assert_eq!((reasons.len(), reasons[10].as_str()), (11, "and 5 more")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_divergence_shows_every_backends_answer_side_by_side() {
    let mut r = record(10);
    r.divergences.push(Divergence {
        t_s: r.start_s + 5400,
        concerns: "drive drive0".into(),
        what: "different mount chosen".into(),
        answers: vec!["ArchiveForUser V00001 pool-a".into(), "ArchiveForUser V00002 pool-a".into()],
    });
    let html = render_html(&r);
    let section = &html[html.find("<section class=\"mismatch\">").expect("a divergence")..];
    assert!(
        section.contains("<h3>1. drive drive0 <span class=\"none\">at +1.5 h (1764811800 s)</span></h3>"),
        "{section}"
    );
    assert!(section.contains("grid-template-columns: repeat(2, minmax(0, 1fr))"));
    let first = section.find("objectstore-redis</h4><pre>ArchiveForUser V00001 pool-a</pre>").expect("first answer");
    let second = section.find("postgres</h4><pre>ArchiveForUser V00002 pool-a</pre>").expect("second answer");
    assert!(first < second, "in backend order");
    let md = render_markdown(&r);
    assert!(md.contains("objectstore-redis:\n\n```text\nArchiveForUser V00001 pool-a\n```\n\npostgres:\n\n```text\nArchiveForUser V00002 pool-a\n```"), "{md}");
    // More answers than backends: each still shown, named as such.
    r.divergences[0].answers.push("third".into());
    assert!(render_html(&r).contains("answer 3 (no backend)</h4><pre>third</pre>"));
}

#[test]
fn an_empty_record_renders_and_says_no_data() {
    let r = E2eRecord::default();
    assert_eq!(Verdict::of(&r), Verdict::NoData);
    assert!(!r.passed(), "a run of no backend did not pass");
    let html = render_html(&r);
    assert!(html.contains("<b>NO DATA</b>"), "{html}");
    assert!(html.contains("No backend ran: no data."));
    assert!(html.contains(">no data</text>"), "the empty charts say so");
    let md = render_markdown(&r);
    assert!(md.contains("**Verdict: NO DATA**") && md.contains("(no samples: no data)"), "{md}");
    // Backends without samples or latencies.
    let mut r = record(0);
    r.backends[0].archive_latency = LatencySummary::default();
    r.backends[1].archive_latency = LatencySummary::default();
    let html = render_html(&r);
    assert!(html.matches(">no data</text>").count() >= 8, "{html}");
    assert!(render_markdown(&r).contains("(no samples: no data)"));
    assert_eq!(mean_drives(&r.backends[0]), None);
}

#[test]
fn extreme_values_render_without_panicking() {
    let mut r = record(3);
    r.start_s = i64::MAX;
    r.end_s = i64::MIN;
    r.drives = u32::MAX;
    let b = &mut r.backends[0];
    b.samples[0].t_s = i64::MIN;
    b.samples[1].t_s = i64::MAX;
    b.samples[2] = Sample { t_s: 0, queued_archive: u64::MAX, drives_busy: u32::MAX, ..Sample::default() };
    b.wall_s = f64::NAN;
    b.time_split = vec![("inf".into(), f64::INFINITY), ("neg".into(), -5.0), ("nan".into(), f64::NAN)];
    b.archive_latency = LatencySummary {
        count: u64::MAX,
        p50_s: f64::NAN,
        p90_s: f64::INFINITY,
        p99_s: -1.0,
        max_s: f64::NEG_INFINITY,
        histogram: vec![(f64::NEG_INFINITY, u64::MAX), (f64::NAN, 1), (f64::INFINITY, u64::MAX), (0.0, 3)],
    };
    r.backends[1].samples.reverse();
    let html = render_html(&r);
    assert!(html.ends_with("</html>\n"));
    assert!(html.contains("NaN s"), "a NaN is shown as such");
    for coordinate in ["=\"NaN", "=\"inf", "=\"-inf", "NaN,", ",NaN", "inf,", ",inf"] {
        assert!(!html.contains(coordinate), "no {coordinate} coordinate");
    }
    let md = render_markdown(&r);
    assert!(md.contains("## Invariants"));
}

#[test]
fn write_report_writes_both_reports_and_the_record() {
    let dir = std::env::temp_dir().join(format!("tapesched-e2e-report-{}", std::process::id())).join("a/b");
    let _ = std::fs::remove_dir_all(&dir);
    let r = hostile_record();
    let (md, html) = write_report(&dir, &r).expect("written");
    assert_eq!((md.clone(), html.clone()), (dir.join("report.md"), dir.join("report.html")));
    assert!(std::fs::read_to_string(&html).expect("html").starts_with("<!DOCTYPE html>"));
    assert!(std::fs::read_to_string(&md).expect("md").starts_with("# End-to-end run: w \\<script\\>"));
    let json = std::fs::read_to_string(dir.join("record.json")).expect("record.json");
    let mut back: serde_json::Value = serde_json::from_str(&json).expect("json");
    // NaN is written as null (JSON has no NaN); everything else comes back as it was.
    assert_eq!(back["tolerances"][0]["values"][1], serde_json::Value::Null);
    back["tolerances"][0]["values"][1] = serde_json::json!(0.0);
    let back: E2eRecord = serde_json::from_value(back).expect("a record");
    assert_eq!(back.backends, r.backends);
    assert_eq!(back.divergences, r.divergences);
    let _ = std::fs::remove_dir_all(dir.parent().and_then(|p| p.parent()).expect("root"));
}

#[test]
fn downsampling_keeps_ends_peaks_and_troughs() {
    let points: Vec<(i64, f64)> = (0..10_000i64).map(|i| (i * 3, ((i * 7919) % 1000) as f64)).collect();
    let mut spiky = points.clone();
    spiky[4321].1 = 5000.0;
    spiky[8765].1 = -3.0;
    let drawn = downsample(&spiky, 200);
    assert!(drawn.len() <= 800, "{}", drawn.len());
    assert_eq!((drawn[0], drawn[drawn.len() - 1]), (spiky[0], spiky[9999]));
    assert!(drawn.contains(&spiky[4321]) && drawn.contains(&spiky[8765]));
    assert!(drawn.windows(2).all(|w| w[0].0 <= w[1].0), "in time order");
    // A short series is drawn whole.
    assert_eq!(downsample(&points[..800], 200), points[..800].to_vec());
    assert!(downsample(&[], 200).is_empty());
}

#[test]
fn large_records_stay_small_and_say_they_are_downsampled() {
    let mut r = record(10_000);
    r.backends.push(BackendRun { backend: "bridge:objectstore-redis:postgres:shadow".into(), ..r.backends[1].clone() });
    let html = render_html(&r);
    assert!(html.len() < 400_000, "{} bytes", html.len());
    assert!(html.contains("Downsampled for drawing"), "the report says so");
    assert!(html.contains("objectstore-redis: 10000 samples, about "));
    let md = render_markdown(&r);
    assert_eq!(
        md.lines().filter(|l| l.starts_with("| ") && l[2..].starts_with(|c: char| c.is_ascii_digit())).count(),
        markdown::INSTANTS
    );
}

#[test]
fn histograms_share_one_axis_and_merge_when_too_many() {
    let a = LatencySummary { histogram: vec![(1.0, 2), (4.0, 3)], ..LatencySummary::default() };
    let b = LatencySummary { histogram: vec![(2.0, 5), (4.0, 1), (f64::NAN, 9)], ..LatencySummary::default() };
    let (uppers, counts) = histogram_categories(&[&a, &b], 40);
    assert_eq!(uppers, vec![1.0, 2.0, 4.0]);
    assert_eq!(counts, vec![vec![2, 0, 3], vec![0, 5, 1]]);
    let many = LatencySummary { histogram: (1..=100).map(|i| (i as f64, 1)).collect(), ..LatencySummary::default() };
    let (uppers, counts) = histogram_categories(&[&many], 40);
    assert_eq!((uppers.len(), uppers[0], counts[0].iter().sum::<u64>()), (34, 3.0, 100));
}

#[test]
fn numbers_and_times_read_well() {
    assert_eq!(fmt_num(2.0), "2");
    assert_eq!(fmt_num(1.25), "1.25");
    assert_eq!(fmt_num(0.5), "0.5");
    assert_eq!(fmt_num(f64::NAN), "NaN");
    assert_eq!(fmt_secs(0.00085), "850 µs");
    assert_eq!(fmt_secs(3.4), "3.40 s");
    assert_eq!(fmt_secs(900.0), "15.0 min");
    assert_eq!(fmt_secs(3.0 * 3600.0), "3.00 h");
    assert_eq!(fmt_secs(-2.0), "-2.00 s");
    assert_eq!(
        (fmt_bound(500.0), fmt_bound(7200.0), fmt_bound(0.002), fmt_bound(1.5)),
        ("500 s".into(), "2 h".into(), "2 ms".into(), "1.5 s".into())
    );
    assert_eq!(fmt_bound(1.0 / 3.0), "333 ms");
    assert_eq!(
        (fmt_bytes(999), fmt_bytes(1_500), fmt_bytes(85_492_000_000_000)),
        ("999 B".into(), "1.50 kB".into(), "85.5 TB".into())
    );
    assert_eq!(utc(1_764_806_400), "2025-12-04 00:00:00 UTC");
    assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
    let r = record(0);
    assert_eq!(since_start(&r, r.start_s + 5400), "+1.5 h");
}

#[test]
fn markdown_snapshot() {
    let mut r = record(6);
    r.mode = "processes".into();
    r.tolerances.push(ToleranceCheck {
        measure: "mounts per hour".into(),
        values: vec![6.0, 6.5],
        tolerance: "within 10 %".into(),
        ok: true,
    });
    r.divergences.push(Divergence {
        t_s: r.start_s + 3600,
        concerns: "drive drive1".into(),
        what: "a different tape chosen".into(),
        answers: vec!["V00001".into(), "V00002".into()],
    });
    insta::assert_snapshot!(render_markdown(&r));
}

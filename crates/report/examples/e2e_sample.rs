//! Writes the end-to-end report of a synthetic but realistic run (three backends over a simulated
//! day, 10 000 samples each, a drive down for two hours, latency distributions, a wall-time
//! split) into the directory given as the first argument (default `e2e-report-sample`), to look
//! at the rendering: `cargo run -p tapesched-report --example e2e_sample -- /tmp/e2e [fail|lockstep]`.
//! With `fail` the run also has a divergence, a failed tolerance and a failed invariant; with
//! `lockstep` it is a lockstep run of two backends that agree on every decision (equal series).
//!
//! The numbers are generated from a fixed seed, not measured.

use std::path::PathBuf;

use tapesched_report::e2e::{
    write_report, BackendRun, DecisionTally, Divergence, E2eRecord, InvariantCheck, LatencySummary, Sample,
    ToleranceCheck, Totals,
};

/// A small deterministic generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const START: i64 = 1_764_806_400;
const DAY: i64 = 86_400;
const SAMPLES: i64 = 10_000;
const DRIVES: u32 = 8;

/// Latency summary of `v` (seconds): nearest-rank percentiles and a 1-2-5 histogram.
fn summary(mut v: Vec<f64>) -> LatencySummary {
    v.sort_by(f64::total_cmp);
    let pct = |p: f64| v[((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    let bounds = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5];
    let mut histogram: Vec<(f64, u64)> = bounds.iter().map(|&b| (b, 0)).collect();
    for &x in &v {
        let k = bounds.partition_point(|&b| b < x).min(bounds.len() - 1);
        histogram[k].1 += 1;
    }
    histogram.retain(|b| b.1 > 0);
    LatencySummary {
        count: v.len() as u64,
        p50_s: pct(50.0),
        p90_s: pct(90.0),
        p99_s: pct(99.0),
        max_s: v[v.len() - 1],
        histogram,
    }
}

/// One backend's run: a queue fed by a daily wave with bursts, drained by the drives up.
fn backend(name: &str, seed: u64, wall_s: f64, split: &[(&str, f64)]) -> BackendRun {
    let mut rng = Rng(seed);
    let (mut qa, mut qr, mut mounts, mut done) = (0f64, 0f64, 0u64, 0u64);
    let (mut busy_prev, mut archived, mut retrieved, mut queued_a, mut queued_r) = (0u32, 0u64, 0u64, 0u64, 0u64);
    let mut samples = Vec::new();
    for i in 0..SAMPLES {
        let t = i * DAY / (SAMPLES - 1);
        let hour = t as f64 / 3600.0;
        let wave = 1.0 + (hour / 24.0 * std::f64::consts::TAU).sin();
        let burst = if (9.0..10.5).contains(&hour) { 25.0 } else { 0.0 };
        let new_a = (wave * 3.0 + burst) * rng.unit() * 2.0;
        let new_r = if (14.0..17.0).contains(&hour) { 18.0 * rng.unit() } else { 0.6 * rng.unit() };
        qa += new_a;
        qr += new_r;
        queued_a += new_a as u64;
        queued_r += new_r as u64;
        let up = if (4.0..6.0).contains(&hour) { DRIVES - 1 } else { DRIVES };
        let wanted = ((qa + qr) / 40.0).ceil() as u32;
        let busy = wanted.min(up);
        if busy > busy_prev {
            mounts += u64::from(busy - busy_prev);
        }
        busy_prev = busy;
        let served = busy as f64 * 0.9;
        let from_r = served.min(qr);
        qr -= from_r;
        let from_a = (served - from_r).min(qa);
        qa -= from_a;
        archived += from_a as u64;
        retrieved += from_r as u64;
        done = archived + retrieved;
        samples.push(Sample {
            t_s: START + t,
            queued_archive: qa as u64,
            queued_retrieve: qr as u64,
            drives_busy: busy,
            drives_up: up,
            mounts,
            done,
        });
    }
    let latencies = |rng: &mut Rng, n: usize, scale: f64| -> Vec<f64> {
        (0..n).map(|_| scale * (-(1.0 - rng.unit()).ln()).powf(1.6) + 5.0 * rng.unit()).collect()
    };
    let archive_latency = summary(latencies(&mut rng, 4000, 600.0));
    let retrieve_latency = summary(latencies(&mut rng, 900, 240.0));
    BackendRun {
        backend: name.to_string(),
        wall_s,
        time_split: split.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        totals: Totals {
            archives_queued: queued_a,
            archived,
            retrieves_queued: queued_r,
            retrieved,
            failed: 3,
            duplicates: 0,
            repacks_queued: 1,
            repacks_done: 1,
            mounts,
            bytes: archived * 2_000_000_000,
        },
        samples,
        archive_latency,
        retrieve_latency,
        invariants: vec![
            InvariantCheck {
                name: "every request done exactly once".into(),
                ok: true,
                detail: format!("{done} of {done}"),
            },
            InvariantCheck { name: "no job left on a drive".into(), ok: true, detail: "0 held".into() },
            InvariantCheck { name: "queues empty at the end".into(), ok: true, detail: String::new() },
        ],
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "e2e-report-sample".into()));
    let variant = args.next();
    let (fail, lockstep) = match variant.as_deref() {
        None => (false, false),
        Some("fail") => (true, false),
        Some("lockstep") => (false, true),
        Some(other) => {
            eprintln!(
                "e2e_sample: unknown argument {other:?} (expected: a directory, then optionally `fail` or `lockstep`)"
            );
            std::process::exit(2);
        }
    };
    let mut backends = vec![
        backend(
            "objectstore-redis",
            7,
            41.2,
            &[("queueing", 6.1), ("next_mount", 14.8), ("pop_jobs", 9.7), ("reports", 4.2), ("library", 3.9)],
        ),
        backend(
            "postgres",
            11,
            33.5,
            &[("queueing", 4.4), ("next_mount", 7.9), ("pop_jobs", 8.8), ("reports", 5.6), ("library", 3.9)],
        ),
        backend(
            "bridge:objectstore-redis:postgres:shadow",
            13,
            58.9,
            &[("queueing", 9.8), ("next_mount", 21.5), ("pop_jobs", 16.0), ("reports", 7.3), ("library", 3.9)],
        ),
    ];
    let mut record = E2eRecord {
        workload: "day-mixed".into(),
        workload_file: "workloads/day-mixed.yaml".into(),
        seed: 20_261_204,
        mode: "processes".into(),
        library: "sim (compat/mhvtl/device.conf)".into(),
        drives: DRIVES,
        tapes: 120,
        start_s: START,
        end_s: START + DAY,
        context: vec![
            "cargo xtask e2e --workload workloads/day-mixed.yaml --mode processes --backends objectstore-redis,postgres,bridge".into(),
            "synthetic sample record (crates/report/examples/e2e_sample.rs): generated, not measured".into(),
            "time scale 1:3600 (a simulated hour per wall second)".into(),
        ],
        backends: Vec::new(),
        decisions: DecisionTally { compared: 0, matched: 0, mounts_chosen: 0 },
        divergences: Vec::new(),
        tolerances: Vec::new(),
    };
    let per_hour = |b: &BackendRun| b.totals.mounts as f64 / 24.0;
    let files_per_mount =
        |b: &BackendRun| (b.totals.archived + b.totals.retrieved) as f64 / b.totals.mounts.max(1) as f64;
    record.tolerances = vec![
        ToleranceCheck {
            measure: "mounts per hour".into(),
            values: backends.iter().map(per_hour).collect(),
            tolerance: "within 15 % of the first backend".into(),
            ok: true,
        },
        ToleranceCheck {
            measure: "files per mount".into(),
            values: backends.iter().map(files_per_mount).collect(),
            tolerance: "within 15 % of the first backend".into(),
            ok: true,
        },
        ToleranceCheck {
            measure: "archive latency p99 (s)".into(),
            values: backends.iter().map(|b| b.archive_latency.p99_s).collect(),
            tolerance: "within 25 % of the first backend".into(),
            ok: true,
        },
    ];
    if fail {
        record.tolerances[2].ok = false;
        backends[1].invariants[1] = InvariantCheck {
            name: "no job left on a drive".into(),
            ok: false,
            detail: "archive job of request 4711 still held by mount 93 (drive <IBM-LTO9-02>)".into(),
        };
        record.divergences.push(Divergence {
            t_s: START + 9 * 3600 + 1234,
            concerns: "drive IBM-LTO9-02, request 4711".into(),
            what: "the request was reported done twice on one backend".into(),
            answers: vec![
                "reported done once at +9.34 h\n  archive 4711 -> V00017 fseq 212".into(),
                "reported done twice\n  +9.34 h archive 4711 -> V00017 fseq 212\n  +9.41 h archive 4711 -> V00017 fseq 212 (after a requeue)".into(),
                "reported done once at +9.34 h\n  archive 4711 -> V00017 fseq 212".into(),
            ],
        });
    }
    if lockstep {
        // Lockstep: every backend steps through the same simulated time; the series are equal.
        record.mode = "lockstep".into();
        record.context[0] =
            "cargo xtask e2e --workload workloads/day-mixed.yaml --mode lockstep --backends objectstore-redis,postgres"
                .into();
        record.tolerances.clear();
        backends.truncate(2);
        let samples = backends[0].samples.clone();
        backends[1].samples = samples;
        backends[1].totals = backends[0].totals.clone();
        backends[1].archive_latency = backends[0].archive_latency.clone();
        backends[1].retrieve_latency = backends[0].retrieve_latency.clone();
        let mounts = backends[0].totals.mounts;
        record.decisions = DecisionTally { compared: mounts * 3 + 17, matched: mounts * 3 + 17, mounts_chosen: mounts };
    }
    record.backends = backends;
    let (md, html) = write_report(&dir, &record)?;
    println!("{}\n{}", md.display(), html.display());
    Ok(())
}

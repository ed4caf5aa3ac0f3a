//! `tapesched migrate status`: the stage and its history, the gate of `live`, the last verify,
//! the backfill, the bridge's counters of every process (in total and over the gate's window)
//! and the unrepaired divergences. Times are shown as UTC dates.

use std::collections::BTreeMap;

use tapesched_migrate::{DivergenceQuery, GateConfig, OpCounts, Record, StoredDivergence};
use tapesched_scheduler::Error;

use crate::migrate::{open_target, StatusArgs};
use crate::table::{micros, render, utc};

/// The gate's settings in one line.
pub fn gate_line(g: &GateConfig) -> String {
    format!(
        "gate of live: a clean verify, something compared and a mismatch rate of at most {} over the last {} s \
         (`tapesched migrate config --max-mismatch-rate R --window SECS`)",
        g.max_mismatch_rate, g.window_secs
    )
}

fn latency(h: &tapesched_migrate::Histogram) -> String {
    format!("{}/{}", micros(h.percentile(50.0)), micros(h.percentile(99.0)))
}

/// The counters per operation kind as a table, with a total row and the ignore rules apart.
pub fn counters_table(counters: &BTreeMap<String, OpCounts>) -> String {
    if counters.is_empty() {
        return "  (nothing counted)\n".into();
    }
    let header = [
        "op",
        "calls",
        "compared",
        "matched",
        "mismatched",
        "ignored",
        "errors L/T",
        "legacy p50/p99",
        "target p50/p99",
    ];
    let mut rows = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    let mut total = OpCounts::default();
    let row = |op: &str, c: &OpCounts| {
        vec![
            op.to_string(),
            c.calls.to_string(),
            c.compared.to_string(),
            c.matched.to_string(),
            c.mismatched.to_string(),
            c.ignored_total().to_string(),
            format!("{}/{}", c.legacy_errors, c.target_errors),
            latency(&c.legacy_latency),
            latency(&c.target_latency),
        ]
    };
    for (op, c) in counters {
        rows.push(row(op, c));
        total.merge(c);
    }
    rows.push(row("(all)", &total));
    let mut out = render(&rows, 2);
    if !total.ignored.is_empty() {
        let rules: Vec<String> = total.ignored.iter().map(|(r, n)| format!("{r} {n}")).collect();
        out.push_str(&format!("  ignored by rule (neither matched nor mismatched): {}\n", rules.join(", ")));
    }
    if total.dropped > 0 {
        out.push_str(&format!(
            "  {} divergence(s) counted but not stored (a process's backlog was full)\n",
            total.dropped
        ));
    }
    out
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    format!("{}...", text.chars().take(max).collect::<String>())
}

/// One stored divergence in a few lines.
pub fn divergence_lines(s: &StoredDivergence) -> String {
    let d = &s.divergence;
    let concerns: Vec<String> = d.concerns.iter().map(|c| c.to_string()).collect();
    let mut out = format!(
        "  #{} {} {} by {} at now={} ({}; {})",
        s.id,
        utc(s.recorded_at),
        d.op,
        s.process,
        d.at,
        d.stage,
        if concerns.is_empty() { "-".to_string() } else { concerns.join(", ") }
    );
    if let Some(note) = &d.note {
        out.push_str(&format!(": {note}"));
    }
    out.push_str(&format!(
        "\n    legacy: {}\n    target: {}\n",
        cut(&d.legacy.to_string(), 160),
        cut(&d.target.to_string(), 160)
    ));
    if let (Some(at), note) = (s.repaired_at, &s.repair_note) {
        out.push_str(&format!(
            "    repaired {}{}\n",
            utc(at),
            note.as_ref().map_or(String::new(), |n| format!(": {n}"))
        ));
    }
    out
}

/// Runs `migrate status`.
pub async fn status(a: StatusArgs) -> Result<u8, Error> {
    let db = open_target(&a.target, false).await?;
    let record = Record::of_postgres(&db);
    let stage = record.read_stage().await?;
    println!("stage: {stage}");
    let gate = record.gate_config().await?;
    println!("{}", gate_line(&gate));
    println!("history:");
    for c in record.history().await? {
        let from = c.previous.map_or("-".to_string(), |p| p.to_string());
        let forced = if c.forced { " (forced)" } else { "" };
        println!("  {}  {from} -> {}{forced} by {}: {}", utc(c.at), c.stage, c.who, c.reason);
    }
    match record.last_verify().await? {
        None => println!("last verify: none"),
        Some(v) => {
            println!("last verify: {}, {} items, {} difference(s)", utc(v.at), v.items, v.differences);
            for line in v.summary.lines() {
                println!("  {line}");
            }
        }
    }
    let cp = record.checkpoint().await?;
    let state = if cp.done {
        "done"
    } else if cp.last_key.is_some() {
        "stopped"
    } else {
        "not started"
    };
    let after = cp.last_key.map_or(String::new(), |k| format!(", last {k}"));
    println!("backfill: {state}, {} items, {} jobs{after}", cp.items, cp.jobs);

    println!("bridge counters, every process, in total (latencies p50/p99):");
    print!("{}", counters_table(&record.counters(None).await?));
    let evidence = record.live_evidence().await?;
    println!("bridge counters, last {} s:", gate.window_secs);
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
        - gate.window_secs;
    print!("{}", counters_table(&record.counters(Some(since)).await?));
    match evidence.mismatch_rate() {
        None => println!("  mismatch rate: - (nothing compared in the window: no evidence for live)"),
        Some(r) => println!(
            "  mismatch rate: {r:.4} ({} of {}, ignored left out), maximum {}",
            evidence.mismatched,
            evidence.matched + evidence.mismatched,
            gate.max_mismatch_rate
        ),
    }
    let unrepaired = record.count_divergences(true).await?;
    let all = record.count_divergences(false).await?;
    println!("divergences: {unrepaired} unrepaired ({all} stored, ignored ones left out)");
    if unrepaired > 0 && a.divergences > 0 {
        let q = DivergenceQuery {
            unrepaired: true,
            limit: a.divergences,
            newest_first: true,
            ..DivergenceQuery::default()
        };
        let latest = record.divergences(&q).await?;
        println!("latest {} unrepaired (`tapesched migrate repair --divergences-only` repairs them):", latest.len());
        for s in &latest {
            print!("{}", divergence_lines(s));
        }
    }
    Ok(0)
}

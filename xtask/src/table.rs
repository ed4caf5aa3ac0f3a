//! The README's tables, as Markdown rows built from a report: one decision table whose rows
//! from both backends go one under the other, and each backend's throughput table.

use serde_json::Value;

/// `1234567.0` -> `1 234 567`, as the README writes numbers.
fn n(v: &Value) -> String {
    let Some(x) = v.as_f64() else { return "-".into() };
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    if x < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// A latency or a ratio as printed (up to three decimals, trailing zeros dropped).
fn f(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) if x >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.3}").trim_end_matches('0').trim_end_matches('.').to_string(),
        None => "-".into(),
    }
}

fn rounds(v: &Value) -> String {
    v.as_array().map(|a| a.iter().map(n).collect::<Vec<_>>().join(", ")).unwrap_or_default()
}

fn decision(r: &Value) -> String {
    let d = &r["mount_decision"];
    let b = &d["breakdown_in_rounds_of_their_own"];
    let mem = &d["memory"];
    let load = &d["load"];
    format!(
        "| backend | data set (pools x VIDs x queued jobs) | next_mount p50 / p99 | substrate p50 / p99 | ratio p50 / p99 \
         | breakdown p50: mount_info / choose | peak RSS, decisions / whole run | load | first mount chosen |\n\
         |---|---|---|---|---|---|---|---|---|\n\
         | {} | {} x {} x {} ({} samples, {} arrivals before each) | {} / {} ms | {} / {} ms | {} / {} | {} / {} ms \
         | {} / {} MiB | {} s | {} |\n",
        r["backend"].as_str().unwrap_or("?"),
        n(&d["pools"]),
        n(&d["vids"]),
        n(&d["queued_jobs"]),
        d["samples"],
        d["arrivals_between_decisions"],
        f(&d["next_mount_ms"]["p50"]),
        f(&d["next_mount_ms"]["p99"]),
        f(&d["substrate_ms"]["p50"]),
        f(&d["substrate_ms"]["p99"]),
        f(&d["ratio_substrate_to_next_mount"]["p50"]),
        f(&d["ratio_substrate_to_next_mount"]["p99"]),
        f(&b["mount_info_read_ms"]["p50"]),
        f(&b["choose_in_memory_ms"]["p50"]),
        f(&mem["peak_rss_mib_during_decisions"]),
        f(&mem["peak_rss_mib_whole_run"]),
        f(&load["seconds"]),
        d["first_mount_chosen"].as_str().unwrap_or("-"),
    )
}

fn postgres(r: &Value) -> String {
    let (q, c, s, g) =
        (&r["queueing"], &r["claiming"], &r["claiming"]["every_session_on_every_queue"], &r["dead_mount_requeue"]);
    let sub = &c["substrate_job_rows"];
    let subs = format!(
        "update by key {} /s (rounds: {}) / COPY {} /s",
        n(&sub["update_by_key_per_s"]),
        rounds(&sub["update_by_key_rounds_per_s"]),
        n(&sub["copy_per_s"])
    );
    format!(
        "| measure | result | substrate | ratio (to update by key / to COPY; queueing: to COPY / to INSERT) | target |\n\
         |---|---|---|---|---|\n\
         | archive requests queued, {} producers, {} per call | {} /s | COPY {} / INSERT {} /s | {} / {} | >= 50 000 /s |\n\
         | jobs claimed, {} sessions on their own queues, {}-job batches (rounds: {}) | {} /s | {} | {} / {} | >= 100 000 /s |\n\
         | jobs claimed, {} sessions all on the same queues (one round) | {} /s | as above | {} / {} | - |\n\
         | dead-mount requeue, one pass, {} jobs, {} mounts (rounds: {}) | {} /s | as above | {} / {} | >= 10 000 /s |\n",
        q["producers"], q["batch"], n(&q["requests_per_s"]),
        n(&q["substrate_request_and_job_rows"]["copy_per_s"]),
        n(&q["substrate_request_and_job_rows"]["multirow_insert_per_s"]),
        f(&q["ratio_to_copy"]), f(&q["ratio_to_multirow_insert"]),
        c["sessions"], c["batch"], rounds(&c["rounds_jobs_per_s"]), n(&c["jobs_per_s"]),
        subs,
        f(&c["ratio_to_update_by_key"]), f(&c["ratio_to_copy"]),
        s["sessions"], n(&s["jobs_per_s"]), f(&s["ratio_to_update_by_key"]), f(&s["ratio_to_copy"]),
        n(&g["jobs"]), g["mounts"], rounds(&g["rounds_jobs_per_s"]), n(&g["jobs_per_s"]),
        f(&g["ratio_to_update_by_key"]), f(&g["ratio_to_copy"]),
    )
}

fn redis(r: &Value) -> String {
    let (s, set) = (&r["settings"], &r["substrate"]);
    let (q, c, g) = (&r["archive_requests_queued_per_s"], &r["jobs_claimed_per_s"], &r["gc_requeue_jobs_per_s"]);
    let subs = format!("{} / {} /s", n(&set["pipelined_set_per_s"]), n(&set["pipelined_get_per_s"]));
    format!(
        "| measure | result | substrate (SET / GET) | ratio | target |\n\
         |---|---|---|---|---|\n\
         | archive requests queued, {} producers (own agents), {} per call, {} pools | {} /s | {} | {} (to SET) | >= 20 000 /s |\n\
         | jobs claimed, {} sessions, {}-job batches (rounds: {}) | {} /s | {} | {} (to GET) | >= 100 000 /s |\n\
         | garbage collector requeue, {} jobs of dead sessions, one pass (rounds: {}) | {} /s | {} | {} (to SET) | >= 10 000 /s |\n",
        s["producers"], s["producer_batch"], s["pools"], n(&q["value"]), subs, f(&q["ratio_to_set"]),
        s["sessions"], s["claim_batch"], rounds(&c["rounds"]), n(&c["value"]), subs, f(&c["ratio_to_get"]),
        n(&s["requests"]), rounds(&g["rounds"]), n(&g["value"]), subs, f(&g["ratio_to_set"]),
    )
}

fn decision_with_repack(r: &Value) -> Option<String> {
    let d = &r["mount_decision"];
    let w = d.get("with_repack_work").filter(|w| !w.is_null())?;
    let q = &w["queued"];
    Some(format!(
        "| backend | data set (user jobs; repack jobs queued beside them) | next_mount p50 / p99 without | \
         with | ratio p99 with / without (target <= 1.2) | extra potential mounts |\n\
         |---|---|---|---|---|---|\n\
         | {} | {} x {} x {}; {} retrieve subrequests on {} REPACKING tapes + {} ArchiveForRepack jobs on {} pools \
         | {} / {} ms | {} / {} ms | {} | {} |\n",
        r["backend"].as_str().unwrap_or("?"),
        n(&d["pools"]),
        n(&d["vids"]),
        n(&d["queued_jobs"]),
        n(&q["retrieve_subrequests"]),
        q["repacking_tapes"],
        n(&q["archive_for_repack_jobs"]),
        q["pools"],
        f(&w["next_mount_ms_without_repack_work"]["p50"]),
        f(&w["next_mount_ms_without_repack_work"]["p99"]),
        f(&w["next_mount_ms"]["p50"]),
        f(&w["next_mount_ms"]["p99"]),
        f(&w["ratio_p99_with_to_without"]),
        w["extra_potential_mounts"],
    ))
}

fn repack_expansion(r: &Value) -> Option<String> {
    let e = r.get("repack_expansion")?;
    let s = &e["substrate"];
    let substrate = match r["backend"].as_str() {
        Some("postgres") => format!("UNNEST insert {} rows/s ({} B rows)", n(&s["rows_per_s"]), n(&s["row_bytes"])),
        _ => format!("pipelined SET {} keys/s ({} B values)", n(&s["sets_per_s"]), n(&s["value_bytes"])),
    };
    Some(format!(
        "| backend | tape (files, per pass, passes) | expansion | substrate | ratio | catalogue read alone \
         | request ids alone | peak RSS during expansion | target |\n\
         |---|---|---|---|---|---|---|---|---|\n\
         | {} | {}, {}, {} | {} files/s ({} s) | {} | {} | {} files/s | {} ids/s | {} MiB | >= {} files/s |\n",
        r["backend"].as_str().unwrap_or("?"),
        n(&e["files"]),
        n(&e["files_per_pass"]),
        e["passes"],
        n(&e["files_per_s"]),
        f(&e["seconds"]),
        substrate,
        f(&e["ratio_to_substrate"]),
        n(&e["catalogue_read_alone"]["files_per_s"]),
        n(&e["request_ids_alone"]["ids_per_s"]),
        f(&e["memory"]["peak_rss_mib_during_expansion"]),
        n(&e["target_per_s"]),
    ))
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "✓"
    } else {
        "✗"
    }
}

/// The bridge's table: each configuration's rates and ratios, backfill and verify, shadow
/// decisions, each with its target and whether it holds.
fn bridge(r: &Value) -> String {
    let mut out = queueing_and_claims(&r["queueing_and_claims"], "Queueing and claims");
    let apart = &r["servers_apart"];
    if apart.is_object() {
        let t = &apart["throttled_share"];
        let share = |phase: &str, server: &str| {
            t[phase][server].as_f64().map(|x| format!("{:.0} %", x * 100.0)).unwrap_or_else(|| "-".into())
        };
        let title = format!(
            "Servers apart (each allowed {} CPU; periods at the budget, Redis / PostgreSQL: alone {} / {}, \
             bridges {} / {})",
            f(&apart["cores_per_server"]),
            share("objectstore-redis alone", "redis"),
            share("postgres alone", "postgres"),
            share("both bridges", "redis"),
            share("both bridges", "postgres"),
        );
        out.push('\n');
        out.push_str(&queueing_and_claims(apart, &title));
    }
    out.push_str(&copy_and_shadow(r));
    out
}

/// One queueing-and-claims table under `title`.
fn queueing_and_claims(q: &Value, title: &str) -> String {
    let c = &q["configurations"];
    let mut out = format!(
        "{title} ({} requests, {} producers x {} per call; {} sessions, {}-job batches, {} pools; \
         both sides' work one after the other: {} queued /s, {} claimed /s):\n\n\
         | configuration | queued /s | ratio to slower alone / to both in turn | CPU busy | claimed /s \
         | ratio to slower alone / to both in turn | CPU busy | target (ratio to slower alone) |\n\
         |---|---|---|---|---|---|---|---|\n",
        n(&q["requests"]),
        q["producers"],
        q["producer_batch"],
        q["sessions"],
        q["claim_batch"],
        q["pools"],
        n(&q["both_one_after_the_other"]["queued_per_s"]),
        n(&q["both_one_after_the_other"]["claimed_per_s"]),
    );
    let pct = |v: &Value| v.as_f64().map(|x| format!("{:.0} %", x * 100.0)).unwrap_or_else(|| "-".into());
    for name in ["objectstore-redis alone", "postgres alone", "bridge dual-write", "bridge live"] {
        let row = &c[name];
        let (rq, rc) = (&row["ratio_queued_to_slower_alone"], &row["ratio_claimed_to_slower_alone"]);
        let (sq, sc) =
            (&row["ratio_queued_to_both_one_after_the_other"], &row["ratio_claimed_to_both_one_after_the_other"]);
        let target = match (rq.as_f64(), rc.as_f64()) {
            (Some(a), Some(b)) => format!(">= 0.8: {} {}", mark(a >= 0.8), mark(b >= 0.8)),
            _ => "-".into(),
        };
        let both = |a: &Value, b: &Value| if a.is_null() { "-".to_string() } else { format!("{} / {}", f(a), f(b)) };
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {target} |\n",
            n(&row["queued_per_s"]),
            both(rq, sq),
            pct(&row["cpu_busy_queueing"]),
            n(&row["claimed_per_s"]),
            both(rc, sc),
            pct(&row["cpu_busy_claiming"]),
        ));
    }
    out
}

/// Backfill and verify, then the shadow decisions.
fn copy_and_shadow(r: &Value) -> String {
    let mut out = String::new();
    let b = &r["backfill_and_verify"];
    let (bf, vf) = (b["backfill_jobs_per_s"].as_f64().unwrap_or(0.0), b["verify_jobs_per_s"].as_f64().unwrap_or(0.0));
    out.push_str(&format!(
        "\nBackfill and verify ({} queued jobs, Redis to PostgreSQL; substrate: the same pages read from Redis alone, \
         {} jobs/s):\n\n\
         | measure | jobs/s | ratio to substrate | target |\n|---|---|---|---|\n\
         | backfill | {} | {} | >= 50 000 {} |\n| verify | {} | {} | >= 100 000 {} |\n",
        n(&b["jobs"]),
        n(&b["substrate_export_alone_jobs_per_s"]),
        n(&b["backfill_jobs_per_s"]),
        f(&b["ratio_backfill_to_export"]),
        mark(bf >= 50_000.0),
        n(&b["verify_jobs_per_s"]),
        f(&b["ratio_verify_to_export"]),
        mark(vf >= 100_000.0),
    ));
    let d = &r["shadow_decisions"];
    let p99 = d["ratio_p99"].as_f64().unwrap_or(f64::INFINITY);
    out.push_str(&format!(
        "\nShadow decisions ({} x {} x {} queued jobs, {} decisions each, every one compared: {} matched):\n\n\
         | next_mount | p50 | p99 |\n|---|---|---|\n\
         | Redis alone | {} ms | {} ms |\n| bridge in shadow | {} ms | {} ms |\n\
         | ratio (target p99 <= 1.2) | {} | {} {} |\n",
        n(&d["pools"]),
        n(&d["vids"]),
        n(&d["queued_jobs"]),
        d["samples"],
        d["decisions_compared"]["matched"],
        f(&d["next_mount_ms_redis_alone"]["p50"]),
        f(&d["next_mount_ms_redis_alone"]["p99"]),
        f(&d["next_mount_ms_bridge_shadow"]["p50"]),
        f(&d["next_mount_ms_bridge_shadow"]["p99"]),
        f(&d["ratio_p50"]),
        f(&d["ratio_p99"]),
        mark(p99 <= 1.2),
    ));
    out
}

/// The tape daemon's simulated day: one row, then the time split.
fn taped(r: &Value) -> String {
    let t = &r["taped"];
    let sub = &t["substrate"];
    let split: Vec<String> = t["split"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|l| l["op"] != "step")
                .map(|l| format!("{} {} s", l["op"].as_str().unwrap_or("?"), f(&l["seconds"])))
                .collect()
        })
        .unwrap_or_default();
    format!(
        "Tape daemon, simulated day (paste under the other backend's):\n\n\
         | backend | day | wall (queueing + run) | CPU per file | mounts / archived | substrate | ratio | machine busy | target |\n\
         |---|---|---|---|---|---|---|---|---|\n\
         | {} | {} drives, {} files of {} bytes, {} h | {} s ({} + {}) | {} us | {} / {} | {} s | {} | {} | <= {} s |\n\n\
         Split of the run (drives' calls; `other`: the rest of the steps): {}; reports pumped {} s\n",
        r["backend"].as_str().unwrap_or("?"),
        t["drives"],
        n(&t["files"]),
        n(&t["file_size"]),
        t["simulated_hours"],
        f(&t["wall_seconds"]),
        f(&t["queue_seconds"]),
        f(&t["run_seconds"]),
        f(&t["cpu_per_file_us"]),
        n(&t["mounts"]),
        n(&t["archived"]),
        f(&sub["day_seconds"]),
        f(&t["ratio_substrate_to_day"]),
        f(&t["machine_busy_share"]),
        t["target_seconds"],
        split.join(", "),
        f(&t["report_pump_seconds"]),
    )
}

/// The README rows of a report: the decision table, then (when measured) the throughput table;
/// for the bridge, its own tables.
pub fn markdown(report: &Value) -> String {
    if report["backend"] == "bridge" {
        return bridge(report);
    }
    if report.get("taped").is_some() {
        return taped(report);
    }
    let mut out = String::from("Mount decision (paste the row under the other backend's):\n\n");
    out.push_str(&decision(report));
    if let Some(t) = decision_with_repack(report) {
        out.push_str("\nMount decision with repack work queued:\n\n");
        out.push_str(&t);
    }
    if let Some(t) = repack_expansion(report) {
        out.push_str("\nRepack expansion:\n\n");
        out.push_str(&t);
    }
    let throughput = match report["backend"].as_str() {
        Some("postgres") if report.get("claiming").is_some() => Some(postgres(report)),
        Some("objectstore-redis") if report.get("substrate").is_some() => Some(redis(report)),
        _ => None,
    };
    if let Some(t) = throughput {
        out.push_str("\nThroughput:\n\n");
        out.push_str(&t);
    }
    out
}

//! The end-to-end report as Markdown: the verdict first, then tables with one column per
//! backend, the series over time at a few evenly spread instants, and every divergence with each
//! backend's answer in its own fenced block. Text from the record is escaped as in the
//! comparison report (`crate::markdown`).

use super::charts::{mean_drives, Span};
use super::{
    first_seen, fmt_bytes, fmt_num, fmt_secs, part_time, since_start, span_words, E2eRecord, LatencyOf, Sample,
    Verdict, TOTALS,
};
use crate::format_rate;
use crate::markdown::{align, fenced, md, row};

/// Instants of the series table (evenly spread over the span, both ends included).
pub(crate) const INSTANTS: usize = 13;

/// A header row: `first`, then one column per backend.
fn backend_head(out: &mut String, r: &E2eRecord, first: &str) {
    let mut head = vec![first.to_string()];
    head.extend(r.backends.iter().map(|b| md(&b.backend)));
    out.push_str(&row(&head));
    out.push_str(&align(head.len()));
}

/// The record as Markdown.
pub fn render_markdown(r: &E2eRecord) -> String {
    let mut out = format!("# End-to-end run: {}\n\n", md(&r.workload));
    let v = Verdict::of(r);
    out.push_str(&format!("**Verdict: {}**", v.word()));
    match &v {
        Verdict::Pass => {
            out.push_str(": no divergence, every tolerance and every invariant held on every backend.\n\n")
        }
        Verdict::NoData => out.push_str(": no backend ran, no data.\n\n"),
        Verdict::Fail(reasons) => {
            out.push_str("\n\n");
            for reason in reasons {
                out.push_str(&format!("- {}\n", md(reason)));
            }
            out.push('\n');
        }
    }
    for (k, v) in [
        ("workload", format!("{} ({})", r.workload, r.workload_file)),
        ("seed", r.seed.to_string()),
        ("mode", r.mode.clone()),
        ("library", format!("{}: {} drives, {} tapes", r.library, r.drives, r.tapes)),
        ("simulated span", span_words(r)),
    ] {
        out.push_str(&format!("- {k}: {}\n", md(&v)));
    }
    let names: Vec<String> =
        r.backends.iter().enumerate().map(|(i, b)| format!("{}. {}", i + 1, md(&b.backend))).collect();
    out.push_str(&format!("- backends: {}\n", if names.is_empty() { "none".to_string() } else { names.join("; ") }));
    if !r.context.is_empty() {
        out.push('\n');
        for line in &r.context {
            out.push_str(&format!("- {}\n", md(line)));
        }
    }
    out.push('\n');

    out.push_str("## Totals\n\n");
    if r.backends.is_empty() {
        out.push_str("(no data)\n\n");
    } else {
        backend_head(&mut out, r, "requests");
        for (label, value) in TOTALS {
            let mut cells = vec![label.to_string()];
            cells.extend(r.backends.iter().map(|b| match value(&b.totals) {
                v if label == "bytes moved" => format!("{} ({v} B)", fmt_bytes(v)),
                v => v.to_string(),
            }));
            out.push_str(&row(&cells));
        }
        let mut cells = vec!["samples over time".to_string()];
        cells.extend(r.backends.iter().map(|b| b.samples.len().to_string()));
        out.push_str(&row(&cells));
        out.push('\n');
    }

    over_time(&mut out, r);
    latency(&mut out, r);
    wall(&mut out, r);

    let d = &r.decisions;
    out.push_str("## Decisions compared\n\n");
    if d.compared == 0 {
        out.push_str("(no decisions compared: no data)\n\n");
    } else {
        out.push_str(&format!(
            "{} mount decisions compared: {} matched ({}), {} did not; of the matched, {} chose a mount.\n\n",
            d.compared,
            d.matched,
            format_rate(d.matched, d.compared),
            d.compared.saturating_sub(d.matched),
            d.mounts_chosen
        ));
    }

    out.push_str(&format!("## Divergences ({})\n\n", r.divergences.len()));
    if r.divergences.is_empty() {
        out.push_str("(none)\n\n");
    }
    for (n, dv) in r.divergences.iter().enumerate() {
        out.push_str(&format!(
            "### {}. {}: at {} ({} s)\n\n",
            n + 1,
            md(&dv.concerns),
            md(&since_start(r, dv.t_s)),
            dv.t_s
        ));
        out.push_str(&format!("- what differs: {}\n\n", md(&dv.what)));
        for i in 0..r.backends.len().max(dv.answers.len()) {
            let name =
                r.backends.get(i).map_or_else(|| format!("answer {} (no backend)", i + 1), |b| b.backend.clone());
            out.push_str(&format!("{}:\n\n", md(&name)));
            out.push_str(&fenced(dv.answers.get(i).map_or("(no answer)", String::as_str)));
            out.push('\n');
        }
    }

    out.push_str("## Tolerances\n\n");
    if r.tolerances.is_empty() {
        out.push_str("(no tolerance checks: no data)\n\n");
    } else {
        let mut head = vec!["measure".to_string()];
        head.extend(r.backends.iter().map(|b| md(&b.backend)));
        head.extend(["tolerance".to_string(), "result".to_string()]);
        out.push_str(&row(&head));
        out.push_str(&align(head.len()));
        for t in &r.tolerances {
            let mut cells = vec![md(&t.measure)];
            cells.extend((0..r.backends.len()).map(|i| t.values.get(i).map_or("-".to_string(), |v| md(&fmt_num(*v)))));
            cells.push(md(&t.tolerance));
            cells.push(if t.ok { "ok" } else { "**FAILED**" }.to_string());
            out.push_str(&row(&cells));
        }
        out.push('\n');
    }

    out.push_str("## Invariants\n\n");
    let names = first_seen(r.backends.iter().flat_map(|b| b.invariants.iter().map(|i| i.name.as_str())));
    if names.is_empty() {
        out.push_str("(no invariants checked: no data)\n\n");
    } else {
        backend_head(&mut out, r, "invariant");
        for name in names {
            let mut cells = vec![md(name)];
            for b in &r.backends {
                cells.push(match b.invariants.iter().find(|i| i.name == name) {
                    None => "not checked".to_string(),
                    Some(i) => {
                        let word = if i.ok { "ok" } else { "**FAILED**" };
                        if i.detail.is_empty() {
                            word.to_string()
                        } else {
                            format!("{word}: {}", md(&i.detail))
                        }
                    }
                });
            }
            out.push_str(&row(&cells));
        }
        out.push('\n');
    }
    out
}

/// The last sample at or before `t` (the first one when `t` is before every sample).
fn at(samples: &[&Sample], t: f64) -> Option<Sample> {
    let k = samples.partition_point(|s| s.t_s as f64 <= t);
    samples.get(k.saturating_sub(1)).map(|s| (*s).clone())
}

fn over_time(out: &mut String, r: &E2eRecord) {
    out.push_str("## Over time\n\n");
    if r.backends.iter().all(|b| b.samples.is_empty()) {
        out.push_str("(no samples: no data)\n\n");
        return;
    }
    let span = Span::of(r);
    out.push_str(&format!(
        "At {INSTANTS} instants evenly spread over the span (each backend's last sample at or before it; report.html draws the whole series, record.json holds every sample). Cells: archive / retrieve jobs queued; drives busy / up; mounts; requests done.\n\n"
    ));
    let mut head = vec!["hour".to_string()];
    for b in &r.backends {
        let name = md(&b.backend);
        head.extend([
            format!("{name} queued A / R"),
            format!("{name} drives busy / up"),
            format!("{name} mounts"),
            format!("{name} done"),
        ]);
    }
    out.push_str(&row(&head));
    out.push_str(&align(head.len()));
    let sorted: Vec<Vec<&Sample>> = r
        .backends
        .iter()
        .map(|b| {
            let mut s: Vec<&Sample> = b.samples.iter().collect();
            s.sort_by_key(|s| s.t_s);
            s
        })
        .collect();
    for k in 0..INSTANTS {
        let t = span.lo + (span.hi - span.lo) * k as f64 / (INSTANTS - 1) as f64;
        let mut cells = vec![fmt_num((t - r.start_s as f64) / 3600.0)];
        for samples in &sorted {
            match at(samples, t) {
                None => cells.extend(std::iter::repeat_n("-".to_string(), 4)),
                Some(s) => cells.extend([
                    format!("{} / {}", s.queued_archive, s.queued_retrieve),
                    format!("{} / {}", s.drives_busy, s.drives_up),
                    s.mounts.to_string(),
                    s.done.to_string(),
                ]),
            }
        }
        out.push_str(&row(&cells));
    }
    out.push('\n');
    for b in &r.backends {
        if let Some((busy, up)) = mean_drives(b) {
            out.push_str(&format!(
                "- {}: on average {} drives busy of {} up (weighted by time)\n",
                md(&b.backend),
                fmt_num(busy),
                fmt_num(up)
            ));
        }
    }
    out.push('\n');
}

fn latency(out: &mut String, r: &E2eRecord) {
    out.push_str("## Request latency\n\nQueued to reported done, simulated time.\n\n");
    if r.backends.is_empty() {
        out.push_str("(no data)\n\n");
        return;
    }
    out.push_str(&row(&["requests", "backend", "count", "p50", "p90", "p99", "max"].map(String::from)));
    out.push_str(&align(7));
    let kinds: [(&str, LatencyOf); 2] = [("archive", |b| &b.archive_latency), ("retrieve", |b| &b.retrieve_latency)];
    for (kind, pick) in kinds {
        for b in &r.backends {
            let l = pick(b);
            let cell = |v: f64| if l.count == 0 { "-".to_string() } else { md(&fmt_secs(v)) };
            out.push_str(&row(&[
                kind.to_string(),
                md(&b.backend),
                l.count.to_string(),
                cell(l.p50_s),
                cell(l.p90_s),
                cell(l.p99_s),
                cell(l.max_s),
            ]));
        }
    }
    out.push('\n');
}

fn wall(out: &mut String, r: &E2eRecord) {
    out.push_str("## Wall time\n\n");
    if r.backends.is_empty() {
        out.push_str("(no data)\n\n");
        return;
    }
    out.push_str("Parts are measured apart and need not add up to the wall time.\n\n");
    let names = first_seen(r.backends.iter().flat_map(|b| b.time_split.iter().map(|p| p.0.as_str())));
    backend_head(out, r, "part");
    let mut cells = vec!["**wall time**".to_string()];
    cells.extend(r.backends.iter().map(|b| md(&fmt_secs(b.wall_s))));
    out.push_str(&row(&cells));
    for name in names {
        let mut cells = vec![md(name)];
        for b in &r.backends {
            cells.push(part_time(b, name).map_or_else(|| "-".to_string(), |t| md(&t)));
        }
        out.push_str(&row(&cells));
    }
    out.push('\n');
}

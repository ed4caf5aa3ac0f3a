//! The end-to-end report as one self-contained page (inline CSS shared with the comparison
//! report, inline SVG, no script, nothing fetched): the verdict first, then every backend side
//! by side. Every string of the record goes through [`esc`].

use std::fmt::Write;

use super::charts::{self, Span};
use super::{
    first_seen, fmt_bytes, fmt_num, fmt_secs, part_time, since_start, span_words, E2eRecord, LatencyOf, Verdict, TOTALS,
};
use crate::format_rate;
use crate::html::{esc, STYLE};
use crate::svg::side_color;

/// Styles of the end-to-end page only, after the shared ones.
const E2E_STYLE: &str = r#"
.verdict { display: flex; align-items: center; gap: 18px; border-radius: 8px; padding: 10px 18px; margin: 10px 0 14px; color: #fff; }
.verdict b { font-size: 30px; letter-spacing: 1px; }
.verdict ul { margin: 0; padding-left: 18px; }
.verdict.pass { background: #2e7d32; } .verdict.fail { background: #c62828; } .verdict.nodata { background: #757575; }
dl.head { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0 10px; font-size: 14px; }
dl.head dt { font-weight: 600; } dl.head dd { margin: 0; overflow-wrap: anywhere; }
td.diff { background: #fff4e5; }
td.ok, span.ok { color: #2e7d32; font-weight: 600; } span.bad { color: #c62828; font-weight: 600; }
.note { color: #555; font-size: 13px; }
.answers pre { white-space: pre-wrap; overflow-wrap: anywhere; }
"#;

fn swatch(i: usize) -> String {
    format!("<i class=\"swatch\" style=\"background:{}\"></i>", side_color(i))
}

/// The record as a self-contained HTML page.
pub fn render_html(r: &E2eRecord) -> String {
    let mut out = String::new();
    let title = format!("End-to-end run: {}", r.workload);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}{E2E_STYLE}</style></head><body><main>\n",
        esc(&title)
    );
    let _ = writeln!(out, "<h1>{}</h1>", esc(&title));
    verdict(&mut out, r);
    header(&mut out, r);
    if r.backends.is_empty() {
        out.push_str("<p class=\"none\">No backend ran: no data.</p>\n");
    }
    totals(&mut out, r);
    let span = Span::of(r);
    series(&mut out, r, &span);
    latency(&mut out, r);
    wall(&mut out, r);
    decisions(&mut out, r);
    divergences(&mut out, r);
    tolerances(&mut out, r);
    invariants(&mut out, r);
    out.push_str("</main></body></html>\n");
    out
}

fn verdict(out: &mut String, r: &E2eRecord) {
    let v = Verdict::of(r);
    let class = match v {
        Verdict::Pass => "pass",
        Verdict::Fail(_) => "fail",
        Verdict::NoData => "nodata",
    };
    let _ = write!(out, "<div class=\"verdict {class}\"><b>{}</b>", v.word());
    match &v {
        Verdict::Pass => {
            out.push_str("<span>no divergence, every tolerance and every invariant held on every backend</span>")
        }
        Verdict::NoData => out.push_str("<span>no backend ran: no data</span>"),
        Verdict::Fail(reasons) => {
            out.push_str("<ul>");
            for reason in reasons {
                let _ = write!(out, "<li>{}</li>", esc(reason));
            }
            out.push_str("</ul>");
        }
    }
    out.push_str("</div>\n");
}

fn header(out: &mut String, r: &E2eRecord) {
    out.push_str("<dl class=\"head\">");
    for (k, v) in [
        ("workload", format!("{} ({})", r.workload, r.workload_file)),
        ("seed", r.seed.to_string()),
        ("mode", r.mode.clone()),
        ("library", format!("{}: {} drives, {} tapes", r.library, r.drives, r.tapes)),
        ("simulated span", span_words(r)),
    ] {
        let _ = write!(out, "<dt>{k}</dt><dd>{}</dd>", esc(&v));
    }
    out.push_str("<dt>backends</dt><dd class=\"sides\">");
    if r.backends.is_empty() {
        out.push_str("<span class=\"none\">none</span>");
    }
    for (i, b) in r.backends.iter().enumerate() {
        let _ = write!(out, "<span>{}{}</span>", swatch(i), esc(&b.backend));
    }
    out.push_str("</dd></dl>\n");
    crate::html::context_list(out, &r.context);
    let d = &r.decisions;
    let failed_tol = r.tolerances.iter().filter(|t| !t.ok).count();
    let failed_inv: usize = r.backends.iter().map(|b| b.invariants.iter().filter(|i| !i.ok).count()).sum();
    let checked_inv: usize = r.backends.iter().map(|b| b.invariants.len()).sum();
    out.push_str("<div class=\"cards\">");
    for (class, label, value, sub) in [
        ("", "decisions compared", d.compared.to_string(), String::new()),
        (
            if d.compared == 0 {
                "muted"
            } else if d.matched < d.compared {
                "bad"
            } else {
                "good"
            },
            "decisions matched",
            d.matched.to_string(),
            format_rate(d.matched, d.compared),
        ),
        (
            if r.divergences.is_empty() { "good" } else { "bad" },
            "divergences",
            r.divergences.len().to_string(),
            String::new(),
        ),
        (
            if failed_tol > 0 { "bad" } else { "good" },
            "tolerances failed",
            failed_tol.to_string(),
            format!("of {}", r.tolerances.len()),
        ),
        (
            if failed_inv > 0 { "bad" } else { "good" },
            "invariants failed",
            failed_inv.to_string(),
            format!("of {checked_inv}"),
        ),
    ] {
        let class = if r.backends.is_empty() { "muted" } else { class };
        let _ = write!(out, "<div class=\"card {class}\">{label}<b>{value}</b>{sub}</div>");
    }
    out.push_str("</div>\n");
}

/// A table head: the first column's title, then one column per backend.
fn backend_head(out: &mut String, r: &E2eRecord, first: &str, numbers: bool) {
    let _ = write!(out, "<table><thead><tr><th>{first}</th>");
    let class = if numbers { " class=\"num\"" } else { "" };
    for (i, b) in r.backends.iter().enumerate() {
        let _ = write!(out, "<th{class}>{}{}</th>", swatch(i), esc(&b.backend));
    }
    out.push_str("</tr></thead><tbody>\n");
}

fn totals(out: &mut String, r: &E2eRecord) {
    out.push_str("<h2>Totals</h2>\n");
    if r.backends.is_empty() {
        out.push_str("<p class=\"none\">No data.</p>\n");
        return;
    }
    out.push_str("<p class=\"note\">Cells of a row whose backends disagree are shaded.</p>\n");
    backend_head(out, r, "requests", true);
    for (label, value) in TOTALS {
        let values: Vec<u64> = r.backends.iter().map(|b| value(&b.totals)).collect();
        let diff = if values.windows(2).any(|w| w[0] != w[1]) { " diff" } else { "" };
        let _ = write!(out, "<tr><td>{label}</td>");
        for v in values {
            if label == "bytes moved" {
                let _ = write!(out, "<td class=\"num{diff}\" title=\"{v} bytes\">{}</td>", fmt_bytes(v));
            } else {
                let _ = write!(out, "<td class=\"num{diff}\">{v}</td>");
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("<tr><td>samples over time</td>");
    for b in &r.backends {
        let _ = write!(out, "<td class=\"num\">{}</td>", b.samples.len());
    }
    out.push_str("</tr>\n</tbody></table>\n");
}

fn series(out: &mut String, r: &E2eRecord, span: &Span) {
    let most = r.backends.iter().map(|b| b.samples.len()).max().unwrap_or(0);
    let note = if most > 4 * charts::SLICES {
        let counts: Vec<String> = r
            .backends
            .iter()
            .map(|b| {
                let drawn = charts::downsample(&charts::series(b, |s| s.queued_archive as f64), charts::SLICES).len();
                format!("{}: {} samples, about {drawn} drawn", b.backend, b.samples.len())
            })
            .collect();
        format!(
            "Downsampled for drawing: the span is cut into {} slices and each keeps its first, lowest, highest and last sample, so peaks survive ({}). The numbers are in the tables and record.json.",
            charts::SLICES,
            counts.join("; ")
        )
    } else if most == 0 {
        "No samples: no data.".to_string()
    } else {
        "Every sample is drawn.".to_string()
    };
    out.push_str("<h2>Queues over time</h2>\n");
    let _ = writeln!(
        out,
        "<p class=\"note\">Jobs queued (not yet on a drive) per backend; hour 0 is the run's start. Lines of backends that agree lie on top of each other (the first one wide and solid, the next ones dashed). {}</p>",
        esc(&note)
    );
    out.push_str("<div class=\"charts\">");
    for (title, value) in [
        ("Archive jobs queued", (|s| s.queued_archive as f64) as fn(&super::Sample) -> f64),
        ("Retrieve jobs queued", |s| s.queued_retrieve as f64),
    ] {
        let _ = write!(out, "<div class=\"chart\">{}</div>", charts::time_chart(r, span, title, "jobs", value));
    }
    out.push_str("</div>\n<h2>Drive utilisation over time</h2>\n");
    out.push_str("<p class=\"note\">Drives busy (a tape mounted, or being mounted or unloaded) and drives up (not down), per backend; the average is weighted by time.</p>\n");
    if r.backends.is_empty() {
        out.push_str("<p class=\"none\">No data.</p>\n");
    } else {
        out.push_str("<div class=\"charts\">");
        for i in 0..r.backends.len() {
            let _ = write!(out, "<div class=\"chart\">{}</div>", charts::drives_chart(r, span, i));
        }
        out.push_str("</div>\n");
    }
    out.push_str("<h2>Mounts and completed requests over time</h2>\n<div class=\"charts\">");
    for (title, y, value) in [
        ("Mounts since the start", "mounts", (|s| s.mounts as f64) as fn(&super::Sample) -> f64),
        ("Requests done since the start", "requests", |s| s.done as f64),
    ] {
        let _ = write!(out, "<div class=\"chart\">{}</div>", charts::time_chart(r, span, title, y, value));
    }
    out.push_str("</div>\n");
}

fn latency(out: &mut String, r: &E2eRecord) {
    out.push_str("<h2>Request latency</h2>\n");
    out.push_str("<p class=\"note\">Queued to reported done, in simulated time: the share of each backend's requests per histogram bucket.</p>\n<div class=\"charts\">");
    let kinds: [(&str, LatencyOf); 2] =
        [("Archive requests", |b| &b.archive_latency), ("Retrieve requests", |b| &b.retrieve_latency)];
    for (title, pick) in kinds {
        let _ = write!(out, "<div class=\"chart\">{}</div>", charts::latency_chart(r, title, pick));
    }
    out.push_str("</div>\n");
    if r.backends.is_empty() {
        out.push_str("<p class=\"none\">No data.</p>\n");
        return;
    }
    out.push_str("<table><thead><tr><th>requests</th><th>backend</th><th class=\"num\">count</th><th class=\"num\">p50</th><th class=\"num\">p90</th><th class=\"num\">p99</th><th class=\"num\">max</th></tr></thead><tbody>\n");
    for (kind, pick) in kinds {
        for (i, b) in r.backends.iter().enumerate() {
            let l = pick(b);
            let cell = |v: f64| if l.count == 0 { "-".to_string() } else { fmt_secs(v) };
            let _ = writeln!(
                out,
                "<tr><td>{kind}</td><td>{}{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                swatch(i),
                esc(&b.backend),
                l.count,
                cell(l.p50_s),
                cell(l.p90_s),
                cell(l.p99_s),
                cell(l.max_s)
            );
        }
    }
    out.push_str("</tbody></table>\n");
}

fn wall(out: &mut String, r: &E2eRecord) {
    out.push_str("<h2>Wall time</h2>\n");
    out.push_str("<p class=\"note\">Real time the run took on each backend and where it went (parts measured apart need not add up to the whole: the rest is grey; parts that overlap are drawn to their sum, the wall time marked by a black line).</p>\n");
    let _ = writeln!(out, "<div class=\"chart\">{}</div>", charts::wall_chart(r));
    if r.backends.is_empty() {
        return;
    }
    let names = first_seen(r.backends.iter().flat_map(|b| b.time_split.iter().map(|p| p.0.as_str())));
    backend_head(out, r, "part", true);
    out.push_str("<tr><td><b>wall time</b></td>");
    for b in &r.backends {
        let _ = write!(out, "<td class=\"num\"><b>{}</b></td>", esc(&fmt_secs(b.wall_s)));
    }
    out.push_str("</tr>\n");
    for name in names {
        let _ = write!(out, "<tr><td>{}</td>", esc(name));
        for b in &r.backends {
            let cell = part_time(b, name).unwrap_or_else(|| "-".to_string());
            let _ = write!(out, "<td class=\"num\">{}</td>", esc(&cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

fn decisions(out: &mut String, r: &E2eRecord) {
    let d = &r.decisions;
    out.push_str("<h2>Decisions compared</h2>\n");
    if d.compared == 0 {
        out.push_str("<p class=\"none\">No decisions compared (no data: a processes-mode run compares outcomes within tolerances instead).</p>\n");
        return;
    }
    let _ = writeln!(
        out,
        "<p>{} mount decisions compared (each drive's <code>next_mount</code> on every backend at once): {} matched ({}), {} did not; of the matched, {} chose a mount and {} chose none.</p>",
        d.compared,
        d.matched,
        format_rate(d.matched, d.compared),
        d.compared.saturating_sub(d.matched),
        d.mounts_chosen,
        d.matched.saturating_sub(d.mounts_chosen)
    );
    if d.matched < d.compared && r.divergences.is_empty() {
        out.push_str("<p class=\"none\">The record counts unmatched decisions but lists no divergence.</p>\n");
    }
}

fn divergences(out: &mut String, r: &E2eRecord) {
    let _ = writeln!(out, "<h2>Divergences ({})</h2>", r.divergences.len());
    if r.divergences.is_empty() {
        out.push_str("<p class=\"none\">None.</p>\n");
        return;
    }
    let cols = r.backends.len().max(1);
    for (n, d) in r.divergences.iter().enumerate() {
        let _ = write!(
            out,
            "<section class=\"mismatch\"><h3>{}. {} <span class=\"none\">at {} ({} s)</span></h3><dl class=\"meta\"><dt>what differs</dt><dd>{}</dd></dl>",
            n + 1,
            esc(&d.concerns),
            esc(&since_start(r, d.t_s)),
            d.t_s,
            esc(&d.what)
        );
        let _ = write!(out, "<div class=\"answers\" style=\"grid-template-columns: repeat({cols}, minmax(0, 1fr))\">");
        let names = r.backends.len().max(d.answers.len());
        for i in 0..names {
            let name =
                r.backends.get(i).map_or_else(|| format!("answer {} (no backend)", i + 1), |b| b.backend.clone());
            let answer = d.answers.get(i).map_or("(no answer)", String::as_str);
            let _ = write!(out, "<div><h4>{}{}</h4><pre>{}</pre></div>", swatch(i), esc(&name), esc(answer));
        }
        out.push_str("</div></section>\n");
    }
}

fn tolerances(out: &mut String, r: &E2eRecord) {
    out.push_str("<h2>Tolerances</h2>\n");
    if r.tolerances.is_empty() {
        out.push_str(
            "<p class=\"none\">No tolerance checks (no data: a lockstep run compares every decision instead).</p>\n",
        );
        return;
    }
    let _ = write!(out, "<table><thead><tr><th>measure</th>");
    for (i, b) in r.backends.iter().enumerate() {
        let _ = write!(out, "<th class=\"num\">{}{}</th>", swatch(i), esc(&b.backend));
    }
    out.push_str("<th>tolerance</th><th>result</th></tr></thead><tbody>\n");
    for t in &r.tolerances {
        let _ = write!(out, "<tr><td>{}</td>", esc(&t.measure));
        for i in 0..r.backends.len() {
            let v = t.values.get(i).map_or("-".to_string(), |v| fmt_num(*v));
            let _ = write!(out, "<td class=\"num\">{}</td>", esc(&v));
        }
        let (class, word) = if t.ok { ("ok", "ok") } else { ("bad", "FAILED") };
        let _ = writeln!(out, "<td>{}</td><td class=\"{class}\">{word}</td></tr>", esc(&t.tolerance));
    }
    out.push_str("</tbody></table>\n");
}

fn invariants(out: &mut String, r: &E2eRecord) {
    out.push_str("<h2>Invariants</h2>\n");
    let names = first_seen(r.backends.iter().flat_map(|b| b.invariants.iter().map(|i| i.name.as_str())));
    if names.is_empty() {
        out.push_str("<p class=\"none\">No invariants checked (no data).</p>\n");
        return;
    }
    backend_head(out, r, "invariant", false);
    for name in names {
        let _ = write!(out, "<tr><td>{}</td>", esc(name));
        for b in &r.backends {
            match b.invariants.iter().find(|i| i.name == name) {
                None => out.push_str("<td class=\"none\">not checked</td>"),
                Some(i) => {
                    let (class, word) = if i.ok { ("ok", "ok") } else { ("bad", "FAILED") };
                    let detail = if i.detail.is_empty() {
                        String::new()
                    } else {
                        format!("<br><span class=\"note\">{}</span>", esc(&i.detail))
                    };
                    let _ = write!(out, "<td><span class=\"{class}\">{word}</span>{detail}</td>");
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

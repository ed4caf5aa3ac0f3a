//! `report.html`: one self-contained page (inline CSS, inline SVG, no script, nothing
//! fetched). Every string of the input goes through [`esc`].

use std::fmt::Write;

use crate::svg::{self, side_color};
use crate::{format_micros, format_rate, Mismatch, Report};

/// Escapes text for HTML and SVG content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page style every report shares.
pub(crate) const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0; background: #f6f7f9; }
main { max-width: 1240px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 24px; margin: 8px 0 6px; }
h2 { font-size: 19px; margin: 30px 0 10px; border-bottom: 1px solid #d0d4da; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 0 0 6px; }
.context { margin: 4px 0 12px; padding-left: 18px; color: #444; }
details.context { padding-left: 0; } details.context summary { cursor: pointer; color: #1f5fa8; }
.sides span { display: inline-block; margin-right: 16px; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 5px; vertical-align: -1px; border-radius: 2px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 10px 0; }
.card { background: #fff; border: 1px solid #d0d4da; border-radius: 6px; padding: 8px 14px; min-width: 140px; }
.card b { display: block; font-size: 22px; }
.card.bad b { color: #c62828; } .card.good b { color: #2e7d32; } .card.muted b { color: #666; }
table { border-collapse: collapse; background: #fff; margin: 6px 0 12px; font-size: 13px; }
th, td { border: 1px solid #d0d4da; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef0f3; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.bad { color: #c62828; font-weight: 600; }
.chart { background: #fff; border: 1px solid #d0d4da; border-radius: 6px; padding: 6px; margin: 8px 0; overflow-x: auto; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 10px; }
svg { font-family: inherit; max-width: 100%; height: auto; }
svg .label { font-size: 12px; fill: #222; }
svg .tick { font-size: 11px; fill: #555; }
svg .legend { font-size: 12px; fill: #222; }
svg .note { font-size: 12px; fill: #444; }
svg .axis-title { font-size: 12px; fill: #333; font-weight: 600; }
svg .chart-title { font-size: 13px; fill: #111; font-weight: 700; }
svg .grid { stroke: #e3e6ea; stroke-width: 1; }
svg .axis { stroke: #666; stroke-width: 1; }
svg .empty-bar { fill: none; stroke: #aaa; stroke-dasharray: 4 3; }
.mismatch { background: #fff; border: 1px solid #d0d4da; border-left: 4px solid #c62828; border-radius: 6px; padding: 10px 12px; margin: 12px 0; }
.mismatch.ignored { border-left-color: #9e9e9e; }
.meta { margin: 0 0 8px; font-size: 13px; }
.meta dt { font-weight: 600; float: left; clear: left; width: 110px; }
.meta dd { margin: 0 0 2px 120px; overflow-wrap: anywhere; }
.answers { display: grid; gap: 10px; }
.answers h4 { margin: 0 0 4px; font-size: 13px; }
pre { margin: 0; background: #fbfbfc; border: 1px solid #e0e3e7; border-radius: 4px; padding: 8px; font-size: 12px; line-height: 1.35;
      white-space: pre; overflow: auto; max-height: 480px; }
.none { color: #666; font-style: italic; }
"#;

/// The report as a self-contained HTML page.
pub fn render_html(r: &Report) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body><main>\n",
        esc(&r.title)
    );
    let _ = writeln!(out, "<h1>{}</h1>", esc(&r.title));
    context_list(&mut out, &r.context);
    out.push_str("<div class=\"sides\"><b>Sides:</b> ");
    for (i, s) in r.sides.iter().enumerate() {
        let _ = write!(out, "<span><i class=\"swatch\" style=\"background:{}\"></i>{}</span>", side_color(i), esc(s));
    }
    out.push_str("</div>\n");

    let (compared, matched, mismatched, ignored) = r
        .ops
        .iter()
        .fold((0, 0, 0, 0), |t, o| (t.0 + o.compared, t.1 + o.matched, t.2 + o.mismatched, t.3 + o.ignored_total()));
    let calls: u64 = r.ops.iter().map(|o| o.calls).sum();
    out.push_str("<div class=\"cards\">");
    for (class, label, value, rate) in [
        ("", "calls", calls, String::new()),
        ("", "compared", compared, String::new()),
        ("good", "matched", matched, format_rate(matched, compared)),
        (if mismatched > 0 { "bad" } else { "good" }, "mismatched", mismatched, format_rate(mismatched, compared)),
        ("muted", "ignored by a rule", ignored, format_rate(ignored, compared)),
    ] {
        let _ = write!(out, "<div class=\"card {class}\">{label}<b>{value}</b>{rate}</div>");
    }
    out.push_str("</div>\n");

    op_section(&mut out, r);
    latency_section(&mut out, r);

    let _ = writeln!(out, "<h2>Mismatches over time</h2>");
    let _ = writeln!(
        out,
        "<p>Mismatches (not the ignored differences) per time bucket, stacked by operation; time in {}.</p>",
        esc(&r.timeline.unit)
    );
    let _ = writeln!(out, "<div class=\"chart\">{}</div>", svg::timeline(r));

    let _ = writeln!(out, "<h2>Mismatches ({})</h2>", r.mismatches.len());
    details(&mut out, r, &r.mismatches, false);
    let _ = writeln!(out, "<h2>Ignored by a rule ({})</h2>", r.ignored.len());
    out.push_str("<p>Documented differences: counted apart, neither matches nor mismatches.</p>\n");
    details(&mut out, r, &r.ignored, true);
    out.push_str("</main></body></html>\n");
    out
}

fn op_section(out: &mut String, r: &Report) {
    out.push_str("<h2>Match rate per operation</h2>\n");
    let _ = writeln!(out, "<div class=\"chart\">{}</div>", svg::match_rates(r));
    if r.ops.is_empty() {
        out.push_str("<p class=\"none\">No operations.</p>\n");
        return;
    }
    out.push_str("<table><thead><tr><th>operation</th><th class=\"num\">calls</th><th class=\"num\">compared</th><th class=\"num\">matched</th><th class=\"num\">mismatched</th><th class=\"num\">ignored</th><th>ignored by rule</th><th class=\"num\">match rate</th>");
    for s in &r.sides {
        let _ = write!(out, "<th class=\"num\">errors<br>{}</th>", esc(s));
    }
    out.push_str("</tr></thead><tbody>\n");
    for o in &r.ops {
        let rules = if o.ignored.is_empty() {
            "-".to_string()
        } else {
            o.ignored.iter().map(|(k, v)| format!("{}: {v}", esc(k))).collect::<Vec<_>>().join("<br>")
        };
        let bad = if o.mismatched > 0 { " bad" } else { "" };
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num{bad}\">{}</td><td class=\"num\">{}</td><td>{rules}</td><td class=\"num\">{}</td>",
            esc(&o.op),
            o.calls,
            o.compared,
            o.matched,
            o.mismatched,
            o.ignored_total(),
            format_rate(o.matched, o.compared)
        );
        for i in 0..r.sides.len() {
            let _ = write!(out, "<td class=\"num\">{}</td>", o.errors.get(i).copied().unwrap_or(0));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

fn latency_section(out: &mut String, r: &Report) {
    out.push_str("<h2>Latency per side</h2>\n");
    out.push_str("<p>Measured around each call (wall time; reported, never used to decide). Percentiles are nearest-rank over the samples kept; count and max cover every call.</p>\n");
    let _ = writeln!(out, "<div class=\"chart\">{}</div>", svg::latency_strips(r));
    let measured: Vec<_> = r.ops.iter().filter(|o| o.latency.iter().any(|l| l.sampled > 0)).collect();
    if !measured.is_empty() {
        out.push_str("<h3>Distribution per operation</h3>\n<div class=\"charts\">");
        for o in &measured {
            let _ = write!(out, "<div class=\"chart\">{}</div>", svg::latency_histogram(r, o));
        }
        out.push_str("</div>\n");
    }
    if r.ops.is_empty() {
        return;
    }
    out.push_str("<table><thead><tr><th>operation</th><th>side</th><th class=\"num\">count</th><th class=\"num\">sampled</th><th class=\"num\">p50</th><th class=\"num\">p90</th><th class=\"num\">p99</th><th class=\"num\">max</th></tr></thead><tbody>\n");
    for o in &r.ops {
        for (i, s) in r.sides.iter().enumerate() {
            let Some(l) = o.latency.get(i) else { continue };
            let cell = |us: u64| if l.sampled == 0 { "-".to_string() } else { format_micros(us) };
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td><i class=\"swatch\" style=\"background:{}\"></i>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&o.op),
                side_color(i),
                esc(s),
                l.count,
                l.sampled,
                cell(l.p50_micros),
                cell(l.p90_micros),
                cell(l.p99_micros),
                if l.count == 0 { "-".into() } else { format_micros(l.max_micros) }
            );
        }
    }
    out.push_str("</tbody></table>\n");
}

fn details(out: &mut String, r: &Report, list: &[Mismatch], ignored: bool) {
    if list.is_empty() {
        out.push_str("<p class=\"none\">None.</p>\n");
        return;
    }
    let cols = r.sides.len().max(1);
    for (n, m) in list.iter().enumerate() {
        let _ = write!(
            out,
            "<section class=\"mismatch{}\"><h3>{}. {} <span class=\"none\">{}</span></h3><dl class=\"meta\"><dt>concerns</dt><dd>{}</dd>",
            if ignored { " ignored" } else { "" },
            n + 1,
            esc(&m.op),
            esc(&m.when),
            esc(&m.concerns)
        );
        if let Some(note) = &m.note {
            let _ = write!(out, "<dt>note</dt><dd>{}</dd>", esc(note));
        }
        if let Some(rule) = &m.ignored_by {
            let _ = write!(out, "<dt>ignored by</dt><dd>{}</dd>", esc(rule));
        }
        let _ =
            write!(out, "</dl><div class=\"answers\" style=\"grid-template-columns: repeat({cols}, minmax(0, 1fr))\">");
        for (i, s) in r.sides.iter().enumerate() {
            let answer = m.answers.get(i).map_or("(no answer)", String::as_str);
            let _ = write!(
                out,
                "<div><h4><i class=\"swatch\" style=\"background:{}\"></i>{}</h4><pre>{}</pre></div>",
                side_color(i),
                esc(s),
                esc(answer)
            );
        }
        out.push_str("</div></section>\n");
    }
}

/// Context lines as a list; a long context (a file per line, a tolerance per line...) folds
/// after its first six lines.
pub(crate) fn context_list(out: &mut String, context: &[String]) {
    const SHOWN: usize = 6;
    if !context.is_empty() {
        out.push_str("<ul class=\"context\">");
        for line in context.iter().take(SHOWN) {
            let _ = write!(out, "<li>{}</li>", esc(line));
        }
        out.push_str("</ul>\n");
    }
    if context.len() > SHOWN {
        let _ = write!(out, "<details class=\"context\"><summary>{} more lines</summary><ul>", context.len() - SHOWN);
        for line in &context[SHOWN..] {
            let _ = write!(out, "<li>{}</li>", esc(line));
        }
        out.push_str("</ul></details>\n");
    }
}

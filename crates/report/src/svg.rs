//! The report's charts as inline SVG, written by hand: match rates per operation, latency
//! percentile strips and histograms per side (log axis), mismatches over time. Every string is
//! escaped ([`esc`]); long labels are shortened, with the full text in a `<title>` tooltip.

use std::fmt::Write;

use crate::html::esc;
use crate::{format_micros, OpRow, Report};

/// Colours of the sides, in order (repeated past the eighth side).
pub(crate) const SIDE_COLORS: [&str; 8] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"];
/// Colours of the operations in the timeline.
pub(crate) const OP_COLORS: [&str; 10] =
    ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const MATCHED: &str = "#59a14f";
const IGNORED: &str = "#b0b0b0";
const MISMATCHED: &str = "#d62728";

pub(crate) fn side_color(i: usize) -> &'static str {
    SIDE_COLORS[i % SIDE_COLORS.len()]
}

/// `s` shortened to `max` characters (with an ellipsis).
pub(crate) fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A text element: `label` shortened to `max` characters, the whole of it as a tooltip.
pub(crate) fn text(x: f64, y: f64, anchor: &str, class: &str, label: &str, max: usize) -> String {
    let shown = short(label, max);
    let title = if shown != label { format!("<title>{}</title>", esc(label)) } else { String::new() };
    format!("<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\" class=\"{class}\">{title}{}</text>", esc(&shown))
}

pub(crate) fn svg_open(w: f64, h: f64, label: &str) -> String {
    format!("<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">", esc(label))
}

/// Legend entries (colour, label) laid out left to right from (x, y), wrapping at `right`;
/// returns the SVG and the y below the legend.
pub(crate) fn legend(entries: &[(String, String)], x: f64, y: f64, right: f64) -> (String, f64) {
    let mut out = String::new();
    let (mut cx, mut cy) = (x, y);
    for (color, label) in entries {
        let shown = short(label, 40);
        let w = 22.0 + shown.chars().count() as f64 * 6.6 + 16.0;
        if cx + w > right && cx > x {
            cx = x;
            cy += 18.0;
        }
        let _ = write!(out, "<rect x=\"{cx:.1}\" y=\"{:.1}\" width=\"14\" height=\"12\" fill=\"{color}\"/>", cy - 10.0);
        out.push_str(&text(cx + 19.0, cy, "start", "legend", label, 40));
        cx += w;
    }
    (out, cy + 12.0)
}

/// Smallest 1, 2 or 5 times a power of ten at or above `v` (at least 1; 1 for NaN).
pub(crate) fn nice(v: f64) -> f64 {
    if v.is_nan() {
        return 1.0;
    }
    let mut p = 1.0;
    loop {
        for m in [1.0, 2.0, 5.0] {
            if m * p >= v {
                return m * p;
            }
        }
        p *= 10.0;
    }
}

/// The label of 10^k microseconds: `1 µs`, `100 µs`, `10 ms`, `1 s`, `100 s`.
fn power_label(k: i32) -> String {
    match k {
        ..=-1 => format!("{} µs", 10f64.powi(k)),
        0..=2 => format!("{} µs", 10u64.pow(k as u32)),
        3..=5 => format!("{} ms", 10u64.pow(k as u32 - 3)),
        _ => format!("{} s", 10u64.pow(k as u32 - 6)),
    }
}

/// A log10 axis over microseconds: `[10^lo, 10^hi]` onto `[x0, x1]`.
struct LogAxis {
    lo: i32,
    hi: i32,
    x0: f64,
    x1: f64,
}

impl LogAxis {
    fn new(min: f64, max: f64, x0: f64, x1: f64) -> LogAxis {
        // Down to 0.1 µs: the first histogram bucket, (0, 1 µs], is drawn from 0.5 µs.
        let lo = min.max(0.1).log10().floor() as i32;
        let mut hi = max.max(1.0).log10().ceil() as i32;
        if hi <= lo {
            hi = lo + 1;
        }
        LogAxis { lo, hi, x0, x1 }
    }

    fn x(&self, us: f64) -> f64 {
        let v = us.max(10f64.powi(self.lo)).log10();
        self.x0 + (v - self.lo as f64) / (self.hi - self.lo) as f64 * (self.x1 - self.x0)
    }

    /// Grid lines and labels at each power of ten, from `top` to `bottom`.
    fn draw(&self, top: f64, bottom: f64) -> String {
        let mut out = String::new();
        for k in self.lo..=self.hi {
            let x = self.x(10f64.powi(k));
            let _ =
                write!(out, "<line x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" class=\"grid\"/>");
            out.push_str(&text(x, bottom + 14.0, "middle", "tick", &power_label(k), 12));
        }
        let _ = write!(
            out,
            "<line x1=\"{:.1}\" y1=\"{bottom:.1}\" x2=\"{:.1}\" y2=\"{bottom:.1}\" class=\"axis\"/>",
            self.x0, self.x1
        );
        out.push_str(&text(
            (self.x0 + self.x1) / 2.0,
            bottom + 30.0,
            "middle",
            "axis-title",
            "latency (log scale)",
            40,
        ));
        out
    }
}

/// Per operation: a bar of the compared calls split into matched, ignored and mismatched.
pub(crate) fn match_rates(r: &Report) -> String {
    let (w, label_w, x0, x1) = (1000.0, 230.0, 240.0, 680.0);
    let row_h = 24.0;
    let top = 44.0;
    let h = top + row_h * r.ops.len().max(1) as f64 + 50.0;
    let mut out = svg_open(w, h, "match rate per operation");
    let entries = [
        (MATCHED.to_string(), "matched".to_string()),
        (IGNORED.to_string(), "ignored by a rule (not a match)".to_string()),
        (MISMATCHED.to_string(), "mismatched".to_string()),
    ];
    out.push_str(&legend(&entries, x0, 16.0, w).0);
    let bottom = top + row_h * r.ops.len().max(1) as f64;
    for pct in [0.0, 25.0, 50.0, 75.0, 100.0] {
        let x = x0 + (x1 - x0) * pct / 100.0;
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" class=\"grid\"/>",
            top - 4.0
        );
        out.push_str(&text(x, bottom + 14.0, "middle", "tick", &format!("{pct:.0} %"), 8));
    }
    out.push_str(&text((x0 + x1) / 2.0, bottom + 32.0, "middle", "axis-title", "share of compared calls (%)", 40));
    if r.ops.is_empty() {
        out.push_str(&text(x0, top + 16.0, "start", "note", "no operations", 20));
    }
    for (i, o) in r.ops.iter().enumerate() {
        let y = top + row_h * i as f64;
        out.push_str(&text(label_w, y + 15.0, "end", "label", &o.op, 32));
        if o.compared == 0 {
            let _ = write!(
                out,
                "<rect x=\"{x0}\" y=\"{:.1}\" width=\"{:.1}\" height=\"16\" class=\"empty-bar\"/>",
                y + 3.0,
                x1 - x0
            );
            out.push_str(&text(x1 + 10.0, y + 15.0, "start", "note", &format!("not compared ({} calls)", o.calls), 40));
            continue;
        }
        let mut x = x0;
        let ignored = o.ignored_total();
        for (n, color, what) in
            [(o.matched, MATCHED, "matched"), (ignored, IGNORED, "ignored"), (o.mismatched, MISMATCHED, "mismatched")]
        {
            if n == 0 {
                continue;
            }
            let bw = (x1 - x0) * n as f64 / o.compared as f64;
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"16\" fill=\"{color}\"><title>{}: {what} {n} of {}</title></rect>",
                y + 3.0,
                esc(&o.op),
                o.compared
            );
            x += bw;
        }
        let mut label = format!("{}/{} matched ({})", o.matched, o.compared, crate::format_rate(o.matched, o.compared));
        if o.mismatched > 0 {
            label.push_str(&format!(", {} mismatched", o.mismatched));
        }
        if ignored > 0 {
            label.push_str(&format!(", {ignored} ignored"));
        }
        out.push_str(&text(x1 + 10.0, y + 15.0, "start", "note", &label, 46));
    }
    out.push_str("</svg>");
    out
}

/// Per operation and side: p50 to p99 as a bar, p90 as a tick, max as a diamond, on one log
/// axis shared by every row.
pub(crate) fn latency_strips(r: &Report) -> String {
    let rows: Vec<(usize, &OpRow, usize)> = r
        .ops
        .iter()
        .enumerate()
        .flat_map(|(k, o)| {
            (0..r.sides.len()).filter(move |&i| o.latency.get(i).is_some_and(|l| l.sampled > 0)).map(move |i| (k, o, i))
        })
        .collect();
    let (w, x0, x1) = (1000.0, 250.0, 980.0);
    let entries: Vec<(String, String)> =
        r.sides.iter().enumerate().map(|(i, s)| (side_color(i).to_string(), s.clone())).collect();
    let (mut legend_svg, legend_bottom) = legend(&entries, 20.0, 16.0, w - 10.0);
    // The markers, drawn as in the rows.
    let y = legend_bottom + 8.0;
    let _ = write!(
        legend_svg,
        "<rect x=\"20\" y=\"{:.1}\" width=\"40\" height=\"10\" fill=\"#777\" opacity=\"0.75\"/>\
         <line x1=\"48\" y1=\"{:.1}\" x2=\"48\" y2=\"{:.1}\" stroke=\"#fff\" stroke-width=\"2\"/>\
         <circle cx=\"20\" cy=\"{y:.1}\" r=\"3.5\" fill=\"#777\" stroke=\"#222\" stroke-width=\"0.8\"/>\
         <line x1=\"60\" y1=\"{y:.1}\" x2=\"80\" y2=\"{y:.1}\" stroke=\"#777\"/>\
         <path d=\"M80,{:.1} l4,4 l-4,4 l-4,-4 z\" fill=\"#777\" stroke=\"#222\" stroke-width=\"0.8\"/>",
        y - 5.0,
        y - 5.0,
        y + 5.0,
        y - 4.0
    );
    legend_svg.push_str(&text(
        95.0,
        y + 4.0,
        "start",
        "legend",
        "dot: p50 · bar: p50 to p99 · white tick: p90 · line to diamond: max (log axis shared by every row)",
        120,
    ));
    let top = y + 22.0;
    let row_h = 16.0;
    let groups = rows.iter().map(|r| r.0).collect::<std::collections::BTreeSet<_>>().len() as f64;
    let bottom = top + row_h * rows.len().max(1) as f64 + 8.0 * groups;
    let h = bottom + 44.0;
    let mut out = svg_open(w, h, "latency percentiles per operation and side");
    out.push_str(&legend_svg);
    let min = rows.iter().map(|(_, o, i)| o.latency[*i].p50_micros).min().unwrap_or(1) as f64;
    let max = rows.iter().map(|(_, o, i)| o.latency[*i].max_micros).max().unwrap_or(10) as f64;
    let axis = LogAxis::new(min, max, x0, x1);
    out.push_str(&axis.draw(top - 4.0, bottom));
    if rows.is_empty() {
        out.push_str(&text(x0, top + 12.0, "start", "note", "no latencies measured", 30));
    }
    let mut y = top;
    let mut last = usize::MAX;
    for (k, o, i) in rows {
        if k != last {
            if last != usize::MAX {
                y += 8.0;
            }
            out.push_str(&text(x0 - 10.0, y + 12.0, "end", "label", &o.op, 34));
            last = k;
        }
        let l = &o.latency[i];
        let c = side_color(i);
        let (p50, p90, p99, mx) = (
            axis.x(l.p50_micros as f64),
            axis.x(l.p90_micros as f64),
            axis.x(l.p99_micros as f64),
            axis.x(l.max_micros as f64),
        );
        let cy = y + row_h / 2.0;
        let tip = format!(
            "{} on {}: p50 {}, p90 {}, p99 {}, max {} ({} samples)",
            o.op,
            r.sides[i],
            format_micros(l.p50_micros),
            format_micros(l.p90_micros),
            format_micros(l.p99_micros),
            format_micros(l.max_micros),
            l.sampled
        );
        let _ = write!(
            out,
            "<g><title>{}</title><line x1=\"{p50:.1}\" y1=\"{cy:.1}\" x2=\"{mx:.1}\" y2=\"{cy:.1}\" stroke=\"{c}\" stroke-width=\"1\"/>\
             <rect x=\"{p50:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"10\" fill=\"{c}\" opacity=\"0.75\"/>\
             <line x1=\"{p90:.1}\" y1=\"{:.1}\" x2=\"{p90:.1}\" y2=\"{:.1}\" stroke=\"#fff\" stroke-width=\"2\"/>\
             <circle cx=\"{p50:.1}\" cy=\"{cy:.1}\" r=\"3.5\" fill=\"{c}\" stroke=\"#222\" stroke-width=\"0.8\"/>\
             <path d=\"M{mx:.1},{:.1} l4,4 l-4,4 l-4,-4 z\" fill=\"{c}\" stroke=\"#222\" stroke-width=\"0.8\"/></g>",
            esc(&tip),
            cy - 5.0,
            (p99 - p50).max(1.0),
            cy - 5.0,
            cy + 5.0,
            cy - 4.0
        );
        y += row_h;
    }
    out.push_str("</svg>");
    out
}

/// The histograms of one operation's sides overlaid (grouped bars per bucket), as the share of
/// each side's samples, on a log axis.
pub(crate) fn latency_histogram(r: &Report, o: &OpRow) -> String {
    let (w, x0, x1) = (580.0, 56.0, 550.0);
    let sides: Vec<usize> = (0..r.sides.len()).filter(|&i| o.latency.get(i).is_some_and(|l| l.sampled > 0)).collect();
    let entries: Vec<(String, String)> = sides
        .iter()
        .map(|&i| (side_color(i).to_string(), format!("{} ({})", r.sides[i], plural(o.latency[i].sampled, "sample"))))
        .collect();
    let (legend_svg, legend_bottom) = legend(&entries, 10.0, 34.0, w - 10.0);
    let top = legend_bottom + 10.0;
    let bottom = top + 130.0;
    let h = bottom + 44.0;
    let mut out = svg_open(w, h, &format!("latency histogram of {}", o.op));
    out.push_str(&text(10.0, 16.0, "start", "chart-title", &o.op, 60));
    out.push_str(&legend_svg);
    let drawn = |b: &crate::Bucket| -> (f64, f64) {
        let upper =
            if b.upper_micros == u64::MAX { (b.lower_micros.max(1) as f64) * 2.0 } else { b.upper_micros as f64 };
        let lower = if b.lower_micros == 0 { upper / 2.0 } else { b.lower_micros as f64 };
        (lower, upper)
    };
    let all = sides.iter().flat_map(|&i| o.latency[i].buckets.iter());
    let (min, max) = all.fold((f64::MAX, 0f64), |(lo, hi), b| {
        let (l, u) = drawn(b);
        (lo.min(l), hi.max(u))
    });
    let axis = LogAxis::new(if min == f64::MAX { 1.0 } else { min }, max.max(10.0), x0, x1);
    let share = |i: usize, b: &crate::Bucket| b.count as f64 * 100.0 / o.latency[i].sampled.max(1) as f64;
    let peak = sides.iter().flat_map(|&i| o.latency[i].buckets.iter().map(move |b| share(i, b))).fold(0f64, f64::max);
    let ymax = nice(peak.max(1.0));
    for frac in [0.0, 0.5, 1.0] {
        let y = bottom - (bottom - top) * frac;
        let _ = write!(out, "<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{x1}\" y2=\"{y:.1}\" class=\"grid\"/>");
        out.push_str(&text(x0 - 6.0, y + 4.0, "end", "tick", &format!("{} %", ymax * frac), 8));
    }
    let _ = write!(out, "<line x1=\"{x0}\" y1=\"{top:.1}\" x2=\"{x0}\" y2=\"{bottom:.1}\" class=\"axis\"/>");
    let _ = write!(
        out,
        "<text transform=\"translate(14,{:.1}) rotate(-90)\" text-anchor=\"middle\" class=\"axis-title\">share of calls</text>",
        (top + bottom) / 2.0
    );
    out.push_str(&axis.draw(top, bottom));
    let n = sides.len().max(1) as f64;
    for (k, &i) in sides.iter().enumerate() {
        for b in &o.latency[i].buckets {
            let (l, u) = drawn(b);
            let (xl, xr) = (axis.x(l), axis.x(u));
            let bw = ((xr - xl) / n - 1.0).max(1.0);
            let x = xl + (xr - xl) / n * k as f64 + 0.5;
            let s = share(i, b);
            let bh = (bottom - top) * s / ymax;
            let tip = format!(
                "{}: {} calls ({s:.1} %) in ({}, {}]",
                r.sides[i],
                b.count,
                format_micros(b.lower_micros),
                if b.upper_micros == u64::MAX { "∞".to_string() } else { format_micros(b.upper_micros) }
            );
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" fill=\"{}\" opacity=\"0.85\"><title>{}</title></rect>",
                bottom - bh,
                side_color(i),
                esc(&tip)
            );
        }
    }
    if sides.is_empty() {
        out.push_str(&text((x0 + x1) / 2.0, (top + bottom) / 2.0, "middle", "note", "no latencies measured", 30));
    }
    out.push_str("</svg>");
    out
}

/// Mismatches per time bucket, stacked by operation.
pub(crate) fn timeline(r: &Report) -> String {
    let t = &r.timeline;
    let ops = t.ops();
    let w = 1000.0;
    let entries: Vec<(String, String)> =
        ops.iter().enumerate().map(|(i, o)| (OP_COLORS[i % OP_COLORS.len()].to_string(), o.clone())).collect();
    let (legend_svg, legend_bottom) = legend(&entries, 70.0, 16.0, w - 10.0);
    let (x0, x1) = (70.0, 980.0);
    let top = legend_bottom + 12.0;
    let bottom = top + 200.0;
    let h = bottom + 48.0;
    let mut out = svg_open(w, h, "mismatches over time");
    out.push_str(&legend_svg);
    let peak = t.buckets.iter().map(|b| b.total()).max().unwrap_or(0).max(1) as f64;
    // Integer ticks: a 1-2-5 step giving at most about five of them.
    let step = nice(peak / 5.0).max(1.0);
    let ymax = (peak / step).ceil() * step;
    let mut v = 0.0;
    while v <= ymax {
        let y = bottom - (bottom - top) * v / ymax;
        let _ = write!(out, "<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{x1}\" y2=\"{y:.1}\" class=\"grid\"/>");
        out.push_str(&text(x0 - 6.0, y + 4.0, "end", "tick", &format!("{v}"), 8));
        v += step;
    }
    let _ = write!(
        out,
        "<text transform=\"translate(18,{:.1}) rotate(-90)\" text-anchor=\"middle\" class=\"axis-title\">mismatches</text>",
        (top + bottom) / 2.0
    );
    let _ = write!(out, "<line x1=\"{x0}\" y1=\"{bottom:.1}\" x2=\"{x1}\" y2=\"{bottom:.1}\" class=\"axis\"/>");
    let mut title = format!("time ({})", t.unit);
    if t.origin != 0 {
        title.push_str(&format!(", from {}", t.origin));
    }
    out.push_str(&text((x0 + x1) / 2.0, bottom + 36.0, "middle", "axis-title", &title, 90));
    if t.buckets.is_empty() {
        out.push_str(&text((x0 + x1) / 2.0, (top + bottom) / 2.0, "middle", "note", "no mismatches", 30));
        out.push_str("</svg>");
        return out;
    }
    let n = t.buckets.len();
    let bw = (x1 - x0) / n as f64;
    let every = n.div_ceil(10);
    for (k, b) in t.buckets.iter().enumerate() {
        let x = x0 + bw * k as f64;
        let mut y = bottom;
        for (i, op) in ops.iter().enumerate() {
            let Some(&c) = b.per_op.get(op) else { continue };
            let bh = (bottom - top) * c as f64 / ymax;
            y -= bh;
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"><title>{}: {c} in [{}, {})</title></rect>",
                x + 1.0,
                (bw - 2.0).max(1.0),
                OP_COLORS[i % OP_COLORS.len()],
                esc(op),
                b.start,
                b.end
            );
        }
        if k % every == 0 {
            let _ = write!(
                out,
                "<line x1=\"{x:.1}\" y1=\"{bottom:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" class=\"axis\"/>",
                bottom + 4.0
            );
            out.push_str(&text(x, bottom + 16.0, "middle", "tick", &b.start.to_string(), 14));
        }
    }
    let end = t.buckets.last().map_or(0, |b| b.end);
    let _ = write!(
        out,
        "<line x1=\"{x1:.1}\" y1=\"{bottom:.1}\" x2=\"{x1:.1}\" y2=\"{:.1}\" class=\"axis\"/>",
        bottom + 4.0
    );
    out.push_str(&text(x1, bottom + 16.0, "middle", "tick", &end.to_string(), 14));
    out.push_str("</svg>");
    out
}

/// `n thing` or `n things`.
pub(crate) fn plural(n: u64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

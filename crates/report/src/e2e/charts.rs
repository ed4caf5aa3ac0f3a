//! The end-to-end report's charts as inline SVG, written by hand like the comparison report's
//! (`crate::svg`, whose helpers and escaping they reuse): series over simulated time with one
//! line per backend (downsampled, see [`downsample`]), drive utilisation per backend, latency
//! histograms per backend and the wall-time split. Every string goes through [`esc`] (via the
//! shared `text` helper or directly).

use std::fmt::Write;

use super::{fmt_bound, fmt_num, fmt_secs, BackendRun, E2eRecord, LatencySummary};
use crate::html::esc;
use crate::svg::{nice, short, side_color, svg_open, text, OP_COLORS};

/// Time slices a series is cut into when it has more points than it can usefully draw; each
/// slice keeps at most four samples (first, lowest, highest, last), so a line has at most
/// `4 * SLICES` points.
pub(crate) const SLICES: usize = 200;

/// `points` (time, value), in time order, reduced to at most `4 * slices` points: the time range
/// is cut into `slices` equal slices and each keeps its first, lowest, highest and last point, in
/// time order. Peaks and troughs survive; a series short enough is returned as it is.
pub(crate) fn downsample(points: &[(i64, f64)], slices: usize) -> Vec<(i64, f64)> {
    let slices = slices.max(1);
    if points.len() <= 4 * slices {
        return points.to_vec();
    }
    let (t0, t1) = (points[0].0 as f64, points[points.len() - 1].0 as f64);
    let span = (t1 - t0).max(1.0);
    let slice = |t: i64| (((t as f64 - t0) / span * slices as f64) as usize).min(slices - 1);
    let mut out = Vec::with_capacity(4 * slices);
    let mut i = 0;
    while i < points.len() {
        let s = slice(points[i].0);
        let (mut lo, mut hi, mut j) = (i, i, i);
        while j < points.len() && slice(points[j].0) == s {
            if points[j].1 < points[lo].1 {
                lo = j;
            }
            if points[j].1 > points[hi].1 {
                hi = j;
            }
            j += 1;
        }
        let mut keep = [i, lo, hi, j - 1];
        keep.sort_unstable();
        let mut last = usize::MAX;
        for k in keep {
            if k != last {
                out.push(points[k]);
                last = k;
            }
        }
        i = j;
    }
    out
}

/// The simulated time range the series charts share, labelled in hours since `origin`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    /// Hour 0 of the axis (the run's start).
    pub origin: i64,
    /// First instant drawn, seconds.
    pub lo: f64,
    /// Last instant drawn, seconds.
    pub hi: f64,
}

impl Span {
    /// The run's simulated span, widened to every sample; an hour from the start when neither
    /// says more.
    pub(crate) fn of(r: &E2eRecord) -> Span {
        let times = r.backends.iter().flat_map(|b| b.samples.iter().map(|s| s.t_s as f64));
        let (mut lo, mut hi) = (r.start_s as f64, (r.end_s as f64).max(r.start_s as f64));
        for t in times {
            lo = lo.min(t);
            hi = hi.max(t);
        }
        if hi <= lo {
            hi = lo + 3600.0;
        }
        Span { origin: r.start_s, lo, hi }
    }

    fn x(&self, t: i64, x0: f64, x1: f64) -> f64 {
        let t = (t as f64).clamp(self.lo, self.hi);
        x0 + (t - self.lo) / (self.hi - self.lo) * (x1 - x0)
    }

    /// Vertical grid lines and hour labels along `bottom`, with the axis title.
    fn draw(&self, x0: f64, x1: f64, top: f64, bottom: f64) -> String {
        let mut out = String::new();
        let (h_lo, h_hi) = ((self.lo - self.origin as f64) / 3600.0, (self.hi - self.origin as f64) / 3600.0);
        let step = hour_step(h_hi - h_lo);
        let mut k = (h_lo / step).ceil();
        while k * step <= h_hi + 1e-9 {
            let h = k * step;
            let x = x0 + (h - h_lo) / (h_hi - h_lo) * (x1 - x0);
            let _ =
                write!(out, "<line x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" class=\"grid\"/>");
            out.push_str(&text(x, bottom + 14.0, "middle", "tick", &fmt_num(h), 10));
            k += 1.0;
        }
        let _ = write!(out, "<line x1=\"{x0}\" y1=\"{bottom:.1}\" x2=\"{x1}\" y2=\"{bottom:.1}\" class=\"axis\"/>");
        out.push_str(&text(
            (x0 + x1) / 2.0,
            bottom + 30.0,
            "middle",
            "axis-title",
            "simulated time since the start (hours)",
            60,
        ));
        out
    }
}

/// A tick step in hours giving at most about eight ticks over `hours`.
fn hour_step(hours: f64) -> f64 {
    if !hours.is_finite() {
        return 1.0;
    }
    const STEPS: [f64; 13] = [1.0 / 60.0, 5.0 / 60.0, 0.25, 0.5, 1.0, 2.0, 3.0, 6.0, 12.0, 24.0, 48.0, 72.0, 168.0];
    for s in STEPS {
        if hours / s <= 8.0 {
            return s;
        }
    }
    nice(hours / 8.0 / 168.0) * 168.0
}

/// Horizontal grid and labels from 0 to a round maximum at or above `peak`; returns the maximum.
fn y_axis(out: &mut String, peak: f64, x0: f64, x1: f64, top: f64, bottom: f64, title: &str) -> f64 {
    let peak = if peak.is_finite() { peak.max(1.0) } else { 1.0 };
    let step = nice(peak / 5.0);
    let ymax = (peak / step).ceil() * step;
    let mut v = 0.0;
    while v <= ymax + 1e-9 {
        let y = bottom - (bottom - top) * v / ymax;
        let _ = write!(out, "<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{x1}\" y2=\"{y:.1}\" class=\"grid\"/>");
        out.push_str(&text(x0 - 6.0, y + 4.0, "end", "tick", &fmt_num(v), 10));
        v += step;
    }
    let _ = write!(out, "<line x1=\"{x0}\" y1=\"{top:.1}\" x2=\"{x0}\" y2=\"{bottom:.1}\" class=\"axis\"/>");
    let _ = write!(
        out,
        "<text transform=\"translate(14,{:.1}) rotate(-90)\" text-anchor=\"middle\" class=\"axis-title\">{}</text>",
        (top + bottom) / 2.0,
        esc(title)
    );
    ymax
}

/// The stroke of backend `i`'s line: the first solid and wide, the next ones thinner and
/// dashed, so that equal series (lockstep runs) stay visible on top of each other.
fn stroke(i: usize) -> String {
    const DASHES: [&str; 4] = ["", "7 4", "2 3", "10 3 2 3"];
    let width = [3.5, 2.0, 1.5, 1.5][i.min(3)];
    let dash = DASHES[i % DASHES.len()];
    let dash = if dash.is_empty() { String::new() } else { format!(" stroke-dasharray=\"{dash}\"") };
    format!("stroke=\"{}\" stroke-width=\"{width}\"{dash} fill=\"none\" stroke-linejoin=\"round\"", side_color(i))
}

/// A legend of lines drawn as in the chart (colour, width, dash); wraps at `right`. Returns the
/// SVG and the y below it.
fn line_legend(entries: &[(String, String)], x: f64, y: f64, right: f64) -> (String, f64) {
    let mut out = String::new();
    let (mut cx, mut cy) = (x, y);
    for (style, label) in entries {
        let shown = short(label, 44);
        let w = 34.0 + shown.chars().count() as f64 * 6.6 + 18.0;
        if cx + w > right && cx > x {
            cx = x;
            cy += 18.0;
        }
        let _ = write!(
            out,
            "<line x1=\"{cx:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" {style}/>",
            cy - 4.0,
            cx + 28.0,
            cy - 4.0
        );
        out.push_str(&text(cx + 34.0, cy, "start", "legend", label, 44));
        cx += w;
    }
    (out, cy + 12.0)
}

/// `points` as an SVG `points` attribute.
fn polyline(points: &[(i64, f64)], span: &Span, x0: f64, x1: f64, ymax: f64, top: f64, bottom: f64) -> String {
    let mut s = String::with_capacity(points.len() * 12);
    for &(t, v) in points {
        let y = bottom - (bottom - top) * (v / ymax).clamp(0.0, 1.0);
        let _ = write!(s, "{:.1},{y:.1} ", span.x(t, x0, x1));
    }
    s.pop();
    s
}

/// One value of every sample of a backend, in time order.
pub(crate) fn series(b: &BackendRun, value: fn(&super::Sample) -> f64) -> Vec<(i64, f64)> {
    let mut points: Vec<(i64, f64)> = b.samples.iter().map(|s| (s.t_s, value(s))).collect();
    points.sort_by_key(|p| p.0);
    points
}

/// A line per backend of one value over simulated time (downsampled), on a shared y axis from 0.
pub(crate) fn time_chart(
    r: &E2eRecord,
    span: &Span,
    title: &str,
    y_title: &str,
    value: fn(&super::Sample) -> f64,
) -> String {
    let (w, x0, x1) = (580.0, 56.0, 560.0);
    let lines: Vec<(usize, Vec<(i64, f64)>)> =
        r.backends.iter().enumerate().map(|(i, b)| (i, downsample(&series(b, value), SLICES))).collect();
    let entries: Vec<(String, String)> =
        r.backends.iter().enumerate().map(|(i, b)| (stroke(i), b.backend.clone())).collect();
    let (legend_svg, legend_bottom) = line_legend(&entries, 10.0, 36.0, w - 10.0);
    let top = legend_bottom + 10.0;
    let bottom = top + 170.0;
    let mut out = svg_open(w, bottom + 44.0, title);
    out.push_str(&text(10.0, 16.0, "start", "chart-title", title, 80));
    out.push_str(&legend_svg);
    let peak = lines.iter().flat_map(|(_, p)| p.iter().map(|p| p.1)).fold(0f64, f64::max);
    let ymax = y_axis(&mut out, peak, x0, x1, top, bottom, y_title);
    out.push_str(&span.draw(x0, x1, top, bottom));
    let mut drawn = 0;
    for (i, points) in &lines {
        if points.is_empty() {
            continue;
        }
        drawn += 1;
        let _ = write!(
            out,
            "<polyline points=\"{}\" {}><title>{}</title></polyline>",
            polyline(points, span, x0, x1, ymax, top, bottom),
            stroke(*i),
            esc(&r.backends[*i].backend)
        );
    }
    if drawn == 0 {
        out.push_str(&text((x0 + x1) / 2.0, (top + bottom) / 2.0, "middle", "note", "no data", 20));
    }
    out.push_str("</svg>");
    out
}

/// The time-weighted means of busy and up drives over the samples (each sample holds until the
/// next one); `None` without two samples at different times.
pub(crate) fn mean_drives(b: &BackendRun) -> Option<(f64, f64)> {
    let mut samples: Vec<&super::Sample> = b.samples.iter().collect();
    samples.sort_by_key(|s| s.t_s);
    let (mut busy, mut up, mut total) = (0.0, 0.0, 0.0);
    for pair in samples.windows(2) {
        let dt = pair[1].t_s as f64 - pair[0].t_s as f64;
        busy += pair[0].drives_busy as f64 * dt;
        up += pair[0].drives_up as f64 * dt;
        total += dt;
    }
    (total > 0.0).then(|| (busy / total, up / total))
}

/// Drives busy (filled) and up (dashed) over simulated time on one backend.
pub(crate) fn drives_chart(r: &E2eRecord, span: &Span, i: usize) -> String {
    let b = &r.backends[i];
    let (w, x0, x1) = (580.0, 56.0, 560.0);
    let busy = downsample(&series(b, |s| s.drives_busy as f64), SLICES);
    let up = downsample(&series(b, |s| s.drives_up as f64), SLICES);
    let mut title = b.backend.clone();
    if let Some((mb, mu)) = mean_drives(b) {
        title = format!("{title}: on average {} busy of {} up", fmt_num(mb), fmt_num(mu));
    }
    let mut out = svg_open(w, 276.0, &format!("drives on {}", b.backend));
    out.push_str(&text(10.0, 16.0, "start", "chart-title", &title, 80));
    let c = side_color(i);
    let _ = write!(
        out,
        "<rect x=\"10\" y=\"28\" width=\"28\" height=\"12\" fill=\"{c}\" fill-opacity=\"0.35\" stroke=\"{c}\"/>\
         <line x1=\"150\" y1=\"34\" x2=\"178\" y2=\"34\" stroke=\"#333\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/>"
    );
    out.push_str(&text(44.0, 38.0, "start", "legend", "drives busy", 20));
    out.push_str(&text(184.0, 38.0, "start", "legend", "drives up (not down)", 30));
    let (top, bottom) = (56.0, 226.0);
    let peak = busy.iter().chain(&up).map(|p| p.1).fold(r.drives as f64, f64::max);
    let ymax = y_axis(&mut out, peak, x0, x1, top, bottom, "drives");
    out.push_str(&span.draw(x0, x1, top, bottom));
    if busy.is_empty() {
        out.push_str(&text((x0 + x1) / 2.0, (top + bottom) / 2.0, "middle", "note", "no data", 20));
    } else {
        // The busy area: the line, then back along the baseline.
        let line = polyline(&busy, span, x0, x1, ymax, top, bottom);
        let (first, last) = (span.x(busy[0].0, x0, x1), span.x(busy[busy.len() - 1].0, x0, x1));
        let _ = write!(
            out,
            "<polygon points=\"{first:.1},{bottom:.1} {line} {last:.1},{bottom:.1}\" fill=\"{c}\" fill-opacity=\"0.35\" stroke=\"{c}\" stroke-width=\"1.2\"/>\
             <polyline points=\"{}\" stroke=\"#333\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\" fill=\"none\"/>",
            polyline(&up, span, x0, x1, ymax, top, bottom)
        );
    }
    if r.drives > 0 {
        let y = bottom - (bottom - top) * r.drives as f64 / ymax;
        let _ = write!(
            out,
            "<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{x1}\" y2=\"{y:.1}\" stroke=\"#999\" stroke-width=\"1\"/>"
        );
        out.push_str(&text(x1, y - 4.0, "end", "tick", &format!("{} drives in the library", r.drives), 40));
    }
    out.push_str("</svg>");
    out
}

/// The histogram buckets of every backend on one categorical axis: the union of their upper
/// bounds, merged in groups when there are more than `max` of them. Returns the upper bound of
/// each category and, per backend, its count in each.
pub(crate) fn histogram_categories(lat: &[&LatencySummary], max: usize) -> (Vec<f64>, Vec<Vec<u64>>) {
    let mut bounds: Vec<f64> =
        lat.iter().flat_map(|l| l.histogram.iter().map(|b| b.0)).filter(|b| !b.is_nan()).collect();
    bounds.sort_by(f64::total_cmp);
    bounds.dedup();
    let group = bounds.len().div_ceil(max.max(1)).max(1);
    let uppers: Vec<f64> = bounds.chunks(group).map(|c| c[c.len() - 1]).collect();
    let counts = lat
        .iter()
        .map(|l| {
            let mut counts = vec![0u64; uppers.len()];
            for &(upper, n) in l.histogram.iter().filter(|b| !b.0.is_nan()) {
                let k = uppers.partition_point(|&u| u < upper).min(uppers.len().saturating_sub(1));
                counts[k] = counts[k].saturating_add(n);
            }
            counts
        })
        .collect();
    (uppers, counts)
}

/// Grouped bars per histogram bucket, one colour per backend, as the share of each backend's
/// requests; each bucket is labelled by its upper bound.
pub(crate) fn latency_chart(r: &E2eRecord, title: &str, pick: fn(&BackendRun) -> &LatencySummary) -> String {
    let (w, x0, x1) = (580.0, 56.0, 560.0);
    let lat: Vec<&LatencySummary> = r.backends.iter().map(pick).collect();
    let (uppers, counts) = histogram_categories(&lat, 40);
    let shown: Vec<usize> = (0..lat.len()).filter(|&i| counts[i].iter().any(|&c| c > 0)).collect();
    let entries: Vec<(String, String)> =
        shown.iter().map(|&i| (side_color(i).to_string(), r.backends[i].backend.clone())).collect();
    let (legend_svg, legend_bottom) = crate::svg::legend(&entries, 10.0, 36.0, w - 10.0);
    let top = legend_bottom + 10.0;
    let bottom = top + 150.0;
    let mut out = svg_open(w, bottom + 58.0, title);
    out.push_str(&text(10.0, 16.0, "start", "chart-title", title, 80));
    out.push_str(&legend_svg);
    let totals: Vec<u64> = counts.iter().map(|c| c.iter().fold(0u64, |a, &b| a.saturating_add(b))).collect();
    let share = |i: usize, k: usize| counts[i][k] as f64 * 100.0 / totals[i].max(1) as f64;
    let peak = shown.iter().flat_map(|&i| (0..uppers.len()).map(move |k| (i, k))).map(|(i, k)| share(i, k));
    let ymax = y_axis(&mut out, peak.fold(0f64, f64::max), x0, x1, top, bottom, "share of requests (%)");
    let _ = write!(out, "<line x1=\"{x0}\" y1=\"{bottom:.1}\" x2=\"{x1}\" y2=\"{bottom:.1}\" class=\"axis\"/>");
    out.push_str(&text(
        (x0 + x1) / 2.0,
        bottom + 44.0,
        "middle",
        "axis-title",
        "queue latency, bucket upper bound (queued to reported done)",
        80,
    ));
    if shown.is_empty() {
        out.push_str(&text((x0 + x1) / 2.0, (top + bottom) / 2.0, "middle", "note", "no data", 20));
        out.push_str("</svg>");
        return out;
    }
    let cw = (x1 - x0) / uppers.len() as f64;
    let every = uppers.len().div_ceil(10);
    let n = shown.len() as f64;
    for (k, &upper) in uppers.iter().enumerate() {
        let cx = x0 + cw * k as f64;
        for (g, &i) in shown.iter().enumerate() {
            let s = share(i, k);
            if counts[i][k] == 0 {
                continue;
            }
            let bw = ((cw - 2.0) / n).max(1.0);
            let bh = (bottom - top) * s / ymax;
            let tip =
                format!("{}: {} requests ({s:.1} %) up to {}", r.backends[i].backend, counts[i][k], fmt_secs(upper));
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" fill=\"{}\" opacity=\"0.85\"><title>{}</title></rect>",
                cx + 1.0 + bw * g as f64,
                bottom - bh,
                side_color(i),
                esc(&tip)
            );
        }
        if k % every == 0 {
            out.push_str(&text(cx + cw / 2.0, bottom + 14.0, "middle", "tick", &format!("≤{}", fmt_bound(upper)), 10));
        }
    }
    out.push_str("</svg>");
    out
}

/// Per backend, a bar of its wall time split into the named parts (the same colour for the same
/// part on every backend); the rest of the wall time is grey, and parts adding up to more than
/// the wall time (overlapping work) are drawn to their sum with the wall time marked.
pub(crate) fn wall_chart(r: &E2eRecord) -> String {
    let (w, label_w, x0, x1) = (1000.0, 200.0, 210.0, 780.0);
    let mut names: Vec<&str> = Vec::new();
    for b in &r.backends {
        for (name, _) in &b.time_split {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    let color = |name: &str| OP_COLORS[names.iter().position(|n| *n == name).unwrap_or(0) % OP_COLORS.len()];
    let mut entries: Vec<(String, String)> = names.iter().map(|n| (color(n).to_string(), n.to_string())).collect();
    entries.push(("#d9d9d9".into(), "not split (rest of the wall time)".into()));
    let (legend_svg, legend_bottom) = crate::svg::legend(&entries, 10.0, 16.0, w - 10.0);
    let top = legend_bottom + 10.0;
    let row_h = 30.0;
    let bottom = top + row_h * r.backends.len().max(1) as f64;
    let mut out = svg_open(w, bottom + 44.0, "wall time per backend");
    out.push_str(&legend_svg);
    let finite = |v: f64| if v.is_finite() { v.max(0.0) } else { 0.0 };
    let extent = |b: &BackendRun| finite(b.wall_s).max(b.time_split.iter().map(|p| finite(p.1)).sum());
    let scale_max = r.backends.iter().map(extent).fold(0f64, f64::max);
    // Round ticks: a 1-2-5 step (in seconds, or a power of ten below one) giving about five.
    let peak = if scale_max > 0.0 { scale_max } else { 1.0 };
    let step = if peak >= 5.0 { nice(peak / 5.0) } else { 10f64.powf((peak / 5.0).log10().floor()) };
    let scale_max = (peak / step).ceil() * step;
    let sx = |v: f64| (x1 - x0) * v / scale_max;
    let ticks = (scale_max / step).round() as usize;
    for k in 0..=ticks {
        let x = x0 + (x1 - x0) * k as f64 / ticks.max(1) as f64;
        let _ = write!(out, "<line x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" class=\"grid\"/>");
        out.push_str(&text(x, bottom + 14.0, "middle", "tick", &format!("{} s", fmt_num(step * k as f64)), 12));
    }
    out.push_str(&text((x0 + x1) / 2.0, bottom + 32.0, "middle", "axis-title", "wall time", 20));
    if r.backends.is_empty() {
        out.push_str(&text(x0, top + 18.0, "start", "note", "no data", 20));
    }
    for (i, b) in r.backends.iter().enumerate() {
        let y = top + row_h * i as f64 + 5.0;
        out.push_str(&text(label_w, y + 14.0, "end", "label", &b.backend, 30));
        let mut x = x0;
        let sum: f64 = b.time_split.iter().map(|p| finite(p.1)).sum();
        for (name, v) in &b.time_split {
            let bw = sx(finite(*v));
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"20\" fill=\"{}\"><title>{}</title></rect>",
                color(name),
                esc(&format!("{} on {}: {}", name, b.backend, fmt_secs(*v)))
            );
            x += bw;
        }
        let wall = finite(b.wall_s);
        if wall > sum {
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"20\" fill=\"#d9d9d9\"><title>not split: {}</title></rect>",
                sx(wall - sum),
                esc(&fmt_secs(wall - sum))
            );
        } else if sum > wall {
            let xw = x0 + sx(wall);
            let _ = write!(
                out,
                "<line x1=\"{xw:.1}\" y1=\"{:.1}\" x2=\"{xw:.1}\" y2=\"{:.1}\" stroke=\"#111\" stroke-width=\"2\"/>",
                y - 3.0,
                y + 23.0
            );
        }
        let mut label = fmt_secs(b.wall_s);
        if sum > wall {
            label.push_str(&format!(" wall, parts {}", fmt_secs(sum)));
        }
        out.push_str(&text(x0 + sx(wall.max(sum)) + 8.0, y + 14.0, "start", "note", &label, 30));
    }
    out.push_str("</svg>");
    out
}

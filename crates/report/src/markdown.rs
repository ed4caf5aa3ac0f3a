//! `report.md`: the report as Markdown tables and preformatted answers.
//!
//! Text from the input is escaped: every ASCII punctuation character that Markdown could read
//! as markup (including `<` and `|`) is backslash-escaped in text and table cells, and answers
//! go in fenced blocks whose fence is longer than any run of backticks they contain.

use crate::{format_micros, format_rate, Mismatch, Report};

/// Escapes `s` for Markdown text or a table cell (newlines become spaces): the characters that
/// can start markup inline (`\\`, backtick, `*`, `_` but within a word, `[`, `]`, `<`, `>`,
/// `|`, `~`, `&`, `#`) are backslash-escaped.
pub(crate) fn md(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        let word = |j: Option<usize>| j.and_then(|j| chars.get(j)).is_some_and(|c| c.is_alphanumeric());
        match c {
            '\n' | '\r' => out.push(' '),
            '_' if word(i.checked_sub(1)) && word(Some(i + 1)) => out.push(c),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '#' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// `text` in a fenced block that nothing inside can close.
pub(crate) fn fenced(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat((longest + 1).max(3));
    format!("{fence}text\n{}\n{fence}\n", text.trim_end_matches('\n'))
}

pub(crate) fn row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

pub(crate) fn align(n: usize) -> String {
    format!("|{}\n", "---|".repeat(n))
}

/// The report as Markdown.
pub fn render_markdown(r: &Report) -> String {
    let mut out = format!("# {}\n\n", md(&r.title));
    for line in &r.context {
        out.push_str(&format!("- {}\n", md(line)));
    }
    out.push_str("\nSides: ");
    out.push_str(
        &r.sides.iter().enumerate().map(|(i, s)| format!("{}. {}", i + 1, md(s))).collect::<Vec<_>>().join("; "),
    );
    out.push_str("\n\n");

    let (compared, matched, mismatched, ignored) = r
        .ops
        .iter()
        .fold((0, 0, 0, 0), |t, o| (t.0 + o.compared, t.1 + o.matched, t.2 + o.mismatched, t.3 + o.ignored_total()));
    out.push_str(&format!(
        "Compared {compared}: matched {matched} ({}), mismatched {mismatched} ({}), ignored {ignored} ({}; neither matches nor mismatches).\n\n",
        format_rate(matched, compared),
        format_rate(mismatched, compared),
        format_rate(ignored, compared)
    ));

    out.push_str("## Per operation\n\n");
    if r.ops.is_empty() {
        out.push_str("(no operations)\n\n");
    } else {
        let mut head: Vec<String> =
            ["operation", "calls", "compared", "matched", "mismatched", "ignored", "match rate"]
                .map(String::from)
                .to_vec();
        head.extend(r.sides.iter().map(|s| format!("errors {}", md(s))));
        out.push_str(&row(&head));
        out.push_str(&align(head.len()));
        for o in &r.ops {
            let ignored = if o.ignored.is_empty() {
                "0".to_string()
            } else {
                let rules = o.ignored.iter().map(|(k, v)| format!("{}: {v}", md(k))).collect::<Vec<_>>().join(", ");
                format!("{} ({rules})", o.ignored_total())
            };
            let mut cells = vec![
                md(&o.op),
                o.calls.to_string(),
                o.compared.to_string(),
                o.matched.to_string(),
                o.mismatched.to_string(),
                ignored,
                format_rate(o.matched, o.compared),
            ];
            cells.extend((0..r.sides.len()).map(|i| o.errors.get(i).copied().unwrap_or(0).to_string()));
            out.push_str(&row(&cells));
        }
        out.push('\n');
    }

    out.push_str("## Latency per side\n\n");
    out.push_str("Percentiles are nearest-rank over the samples kept (`sampled`); count and max cover every call.\n\n");
    if r.ops.is_empty() {
        out.push_str("(no operations)\n\n");
    } else {
        out.push_str(&row(&["operation", "side", "count", "sampled", "p50", "p90", "p99", "max"].map(String::from)));
        out.push_str(&align(8));
        for o in &r.ops {
            for (i, side) in r.sides.iter().enumerate() {
                let Some(l) = o.latency.get(i) else { continue };
                let cell = |us: u64| if l.sampled == 0 { "-".to_string() } else { format_micros(us) };
                out.push_str(&row(&[
                    md(&o.op),
                    md(side),
                    l.count.to_string(),
                    l.sampled.to_string(),
                    cell(l.p50_micros),
                    cell(l.p90_micros),
                    cell(l.p99_micros),
                    if l.count == 0 { "-".into() } else { format_micros(l.max_micros) },
                ]));
            }
        }
        out.push('\n');
    }

    out.push_str(&format!("## Mismatches over time ({})\n\n", md(&r.timeline.unit)));
    if r.timeline.buckets.is_empty() {
        out.push_str("(no mismatches)\n\n");
    } else {
        if r.timeline.origin != 0 {
            out.push_str(&format!("Times are relative to {}.\n\n", r.timeline.origin));
        }
        out.push_str("Buckets without a mismatch are left out.\n\n");
        let ops = r.timeline.ops();
        let mut head = vec!["from".to_string(), "to".to_string()];
        head.extend(ops.iter().map(|o| md(o)));
        head.push("total".into());
        out.push_str(&row(&head));
        out.push_str(&align(head.len()));
        for b in r.timeline.buckets.iter().filter(|b| b.total() > 0) {
            let mut cells = vec![b.start.to_string(), b.end.to_string()];
            cells.extend(ops.iter().map(|o| b.per_op.get(o).copied().unwrap_or(0).to_string()));
            cells.push(b.total().to_string());
            out.push_str(&row(&cells));
        }
        out.push('\n');
    }

    out.push_str(&format!("## Mismatches ({})\n\n", r.mismatches.len()));
    details(&mut out, r, &r.mismatches, "(none)");
    out.push_str(&format!("## Ignored by a rule ({}): neither matches nor mismatches\n\n", r.ignored.len()));
    details(&mut out, r, &r.ignored, "(none)");
    out
}

fn details(out: &mut String, r: &Report, list: &[Mismatch], none: &str) {
    if list.is_empty() {
        out.push_str(none);
        out.push_str("\n\n");
        return;
    }
    for (n, m) in list.iter().enumerate() {
        out.push_str(&format!("### {}. {}: {}\n\n", n + 1, md(&m.op), md(&m.when)));
        out.push_str(&format!("- concerns: {}\n", md(&m.concerns)));
        if let Some(note) = &m.note {
            out.push_str(&format!("- note: {}\n", md(note)));
        }
        if let Some(rule) = &m.ignored_by {
            out.push_str(&format!("- ignored by rule: {}\n", md(rule)));
        }
        out.push('\n');
        for (i, side) in r.sides.iter().enumerate() {
            out.push_str(&format!("{}:\n\n", md(side)));
            out.push_str(&fenced(m.answers.get(i).map_or("(no answer)", String::as_str)));
            out.push('\n');
        }
    }
}

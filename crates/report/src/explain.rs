//! Mount decisions as text, for the mismatches of a report.
//!
//! - [`decision_text`]: a [`Decision`] in `tapesched explain`'s form (the chosen mount, every
//!   candidate in decision order with its priority, files, bytes, whether it was selected and
//!   why not, every rejected potential mount with its reason); `tapesched explain` prints the
//!   same text.
//! - [`mount_answer_text`]: a `next_mount` answer of the migration bridge, the JSON
//!   `{"chosen": MountSpec|null, "mount_info": MountInfo|null}`: the chosen mount and the
//!   decision's input, one potential mount per line, each marked against the other side's.

use serde_json::Value;
use tapesched_scheduler::db::{MountInfo, MountSpec, PotentialMount};
use tapesched_scheduler::decision::Decision;

/// Renders rows (the first is the header) with columns padded to their widest cell, two spaces
/// apart, each line indented by `indent` spaces.
pub fn table(rows: &[Vec<String>], indent: usize) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let mut line = " ".repeat(indent);
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn header(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// The decision, candidates and rejected potential mounts as `tapesched explain` prints them
/// (from the `Decision:` line on).
pub fn decision_text(d: &Decision) -> String {
    let mut out = String::new();
    match &d.chosen {
        Some(m) => out.push_str(&format!(
            "Decision: mount {} tape {} of pool {} (VO {})\n",
            m.mount_type, m.vid, m.tape_pool, m.vo
        )),
        None => out.push_str("Decision: no mount\n"),
    }
    out.push_str(&format!("\nCandidates in decision order ({}):\n", d.candidates.len()));
    if d.candidates.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let mut rows =
            vec![header(&["#", "TYPE", "POOL", "VID", "PRIORITY", "FILES", "BYTES", "SELECTED", "SKIP REASON"])];
        for (i, c) in d.candidates.iter().enumerate() {
            rows.push(vec![
                (i + 1).to_string(),
                c.mount_type.to_string(),
                c.tape_pool.clone(),
                c.vid.clone().unwrap_or_else(|| "-".into()),
                c.priority.to_string(),
                c.files_queued.to_string(),
                c.bytes_queued.to_string(),
                if c.selected { "yes" } else { "no" }.to_string(),
                c.skip_reason.map_or("-", |r| r.as_str()).to_string(),
            ]);
        }
        out.push_str(&table(&rows, 2));
    }
    out.push_str(&format!("\nRejected ({}):\n", d.rejected.len()));
    if d.rejected.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let mut rows = vec![header(&["TYPE", "POOL", "VID", "REASON"])];
        for r in &d.rejected {
            rows.push(vec![
                r.mount_type.to_string(),
                r.tape_pool.clone().unwrap_or_else(|| "-".into()),
                r.vid.clone().unwrap_or_else(|| "-".into()),
                r.reason.as_str().to_string(),
            ]);
        }
        out.push_str(&table(&rows, 2));
    }
    out
}

/// The chosen mount and the mount info of a bridge `next_mount` answer, parsed; `None` when
/// the value does not have that shape.
pub fn parse_mount_answer(v: &Value) -> Option<(Option<MountSpec>, Option<MountInfo>)> {
    let obj = v.as_object()?;
    if !obj.contains_key("chosen") || !obj.contains_key("mount_info") {
        return None;
    }
    let chosen = serde_json::from_value(obj["chosen"].clone()).ok()?;
    let info = serde_json::from_value(obj["mount_info"].clone()).ok()?;
    Some((chosen, info))
}

fn same_queue(a: &PotentialMount, b: &PotentialMount) -> bool {
    (a.mount_type, &a.tape_pool, &a.vid) == (b.mount_type, &b.tape_pool, &b.vid)
}

/// A bridge `next_mount` answer as text: the chosen mount, then each potential mount of the
/// mount info (the decision's input) on a line, marked `=` when the other side's answer has
/// the same, `~` when it has the same queue with other values, `+` when it lacks the queue.
/// Without `other` nothing is marked. A value of another shape is shown as JSON.
pub fn mount_answer_text(v: &Value, other: Option<&Value>) -> String {
    let Some((chosen, info)) = parse_mount_answer(v) else { return pretty_json(v) };
    let other_info = other.and_then(parse_mount_answer).and_then(|(_, i)| i);
    let mut out = match &chosen {
        Some(m) => format!(
            "Chosen: mount {} tape {} of pool {} (VO {})\n  for drive {} in library {}\n",
            m.mount_type, m.vid, m.tape_pool, m.vo, m.drive, m.logical_library
        ),
        None => "Chosen: no mount\n".to_string(),
    };
    let Some(info) = info else {
        out.push_str("\nMount info: (not read)\n");
        return out;
    };
    out.push_str(&format!("\nMount info ({} potential mounts):\n", info.potential_mounts.len()));
    if info.potential_mounts.is_empty() {
        out.push_str("  (none)\n");
        return out;
    }
    let mut rows = vec![header(&[
        "", "TYPE", "POOL", "VID", "PRIORITY", "MIN AGE", "FILES", "BYTES", "OLDEST", "YOUNGEST", "POLICIES", "SLEEP",
    ])];
    for pm in &info.potential_mounts {
        let mark = match &other_info {
            None => "",
            Some(o) => match o.potential_mounts.iter().find(|q| same_queue(q, pm)) {
                Some(q) if **q == **pm => "=",
                Some(_) => "~",
                None => "+",
            },
        };
        let policies = pm.policy_counts.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(",");
        rows.push(vec![
            mark.to_string(),
            pm.mount_type.to_string(),
            pm.tape_pool.clone().unwrap_or_else(|| "-".into()),
            pm.vid.clone().unwrap_or_else(|| "-".into()),
            pm.priority.to_string(),
            pm.min_request_age.to_string(),
            pm.files_queued.to_string(),
            pm.bytes_queued.to_string(),
            pm.oldest_job_start.to_string(),
            pm.youngest_job_start.to_string(),
            if policies.is_empty() { "-".into() } else { policies },
            pm.sleep.as_ref().map_or("-".into(), |s| format!("{} until {}", s.disk_system, s.until)),
        ]);
    }
    out.push_str(&table(&rows, 2));
    if other_info.is_some() {
        out.push_str("  (= same on the other side, ~ other values there, + not there)\n");
    }
    out
}

/// At most this many bytes of an answer are shown.
pub const MAX_ANSWER: usize = 20_000;

/// A JSON value pretty-printed, cut at [`MAX_ANSWER`] bytes (saying how much was left out).
pub fn pretty_json(v: &Value) -> String {
    clip(&serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()))
}

/// `text` cut at [`MAX_ANSWER`] bytes (on a character boundary), saying how much was left out.
pub fn clip(text: &str) -> String {
    if text.len() <= MAX_ANSWER {
        return text.to_string();
    }
    let mut end = MAX_ANSWER;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n... ({} more bytes)", &text[..end], text.len() - end)
}

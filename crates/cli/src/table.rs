//! Plain-text tables with aligned columns, and the time and latency forms they show.

/// Renders rows (the first is the header) with columns padded to their widest cell, two spaces
/// apart, each line indented by `indent` spaces.
pub fn render(rows: &[Vec<String>], indent: usize) -> String {
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

/// Epoch seconds as a UTC date and time: `2026-12-04 04:37:33 UTC`.
pub use tapesched_report::utc;

/// A latency in microseconds, short: `850us`, `12.3ms`, `1.52s`; `-` for none.
pub fn micros(us: Option<u64>) -> String {
    match us {
        None => "-".into(),
        Some(us) if us < 1000 => format!("{us}us"),
        Some(us) if us < 1_000_000 => format!("{:.1}ms", us as f64 / 1000.0),
        Some(us) => format!("{:.2}s", us as f64 / 1_000_000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_seconds_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_358_253), "2026-12-04 04:24:13 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(micros(Some(850)), "850us");
        assert_eq!(micros(Some(12_345)), "12.3ms");
        assert_eq!(micros(None), "-");
    }

    #[test]
    fn aligns_columns() {
        let rows = vec![vec!["A".to_string(), "BB".to_string()], vec!["ccc".to_string(), "d".to_string()]];
        assert_eq!(render(&rows, 2), "  A    BB\n  ccc  d\n");
    }
}

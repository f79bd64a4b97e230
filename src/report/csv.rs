//! Every table of the report as a CSV file, for the statistician.
//!
//! Long ("tidy") format: a split table gets one line per row and group, with the group
//! and its N as columns, so a statistician can filter by arm without unpicking headers.
//! A count column becomes two, `… n` and `… %` (of the group's N, one decimal). RFC 4180 quoting, `\n` line ends, UTF-8;
//! files are numbered in document order, so the same input gives the same files.

use super::document::{Cell, Group, Table};
use super::sections::document;
use super::{DsmbInput, DsmbSummary};

/// One CSV per table: `(file name, CSV text)`, in document order (`01_key_figures.csv`, …).
pub fn render_csv(input: &DsmbInput, summary: &DsmbSummary) -> Vec<(String, String)> {
    document(input, summary)
        .tables()
        .enumerate()
        .map(|(i, t)| (format!("{:02}_{}.csv", i + 1, t.id), table_csv(t)))
        .collect()
}

fn table_csv(t: &Table) -> String {
    let split = !t.groups.is_empty();
    let width = t.columns.len();
    // A column holds counts when any of its cells, in any group, is a count.
    let counts: Vec<bool> = (0..width)
        .map(|c| t.rows.iter().any(|r| r.cells.iter().skip(c).step_by(width.max(1)).any(is_count)))
        .collect();
    let mut header: Vec<String> = t.stub.clone();
    if split {
        header.push("group".to_string());
        header.push("N".to_string());
    }
    for (label, count) in t.columns.iter().zip(&counts) {
        if *count {
            // "Subjects n (%)" becomes "Subjects n" and "Subjects %".
            let base = label.strip_suffix("n (%)").unwrap_or(label).trim_end();
            header.push(format!("{base} n").trim_start().to_string());
            header.push(format!("{base} %").trim_start().to_string());
        } else {
            header.push(label.clone());
        }
    }
    let mut out = String::new();
    line(&mut out, &header);
    for r in &t.rows {
        let blocks: Vec<(Option<&Group>, &[Cell])> = if split {
            t.groups.iter().zip(r.cells.chunks(width.max(1))).map(|(g, c)| (Some(g), c)).collect()
        } else {
            vec![(None, r.cells.as_slice())]
        };
        for (group, cells) in blocks {
            let mut fields = r.stub.clone();
            if let Some(g) = group {
                fields.push(g.label.clone());
                fields.push(g.n.to_string());
            }
            for (cell, count) in cells.iter().zip(&counts) {
                fields.push(cell.plain());
                if *count {
                    fields.push(cell.percent().unwrap_or_default());
                }
            }
            line(&mut out, &fields);
        }
    }
    out
}

fn is_count(c: &Cell) -> bool {
    matches!(c, Cell::Count { .. })
}

fn line(out: &mut String, fields: &[String]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&quote(f));
    }
    out.push('\n');
}

/// RFC 4180: quote a field holding a comma, a quote, a line break or outer spaces. A field
/// a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab or CR first: a term typed
/// at a site could be `=HYPERLINK(…)`) is neutralised with a leading `'`; numbers stay.
fn quote(field: &str) -> String {
    let neutralised;
    let field = if field.starts_with(['=', '+', '-', '@', '\t', '\r']) && field.parse::<f64>().is_err() {
        neutralised = format!("'{field}");
        neutralised.as_str()
    } else {
        field
    };
    let needs = field.contains([',', '"', '\n', '\r']) || field.trim() != field;
    if needs {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a, b"), "\"a, b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quote(" padded"), "\" padded\"");
        assert_eq!(quote("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn a_field_a_spreadsheet_would_run_is_neutralised_and_numbers_are_not() {
        assert_eq!(quote("=HYPERLINK(\"http://x\",\"AE\")"), "\"'=HYPERLINK(\"\"http://x\"\",\"\"AE\"\")\"");
        assert_eq!(quote("+cmd"), "'+cmd");
        assert_eq!(quote("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(quote("-2+3"), "'-2+3");
        assert_eq!(quote("\tx"), "'\tx");
        assert_eq!(quote("-1.5"), "-1.5");
        assert_eq!(quote("+0.5"), "+0.5");
    }
}

//! The report as a document: numbered sections of typed tables, findings and charts, and
//! the plain-string view of it that the HTML and typst templates read.
//!
//! HTML, CSV and PDF are all rendered from this one model, so they carry the same
//! numbers. Cells stay typed (a count keeps its denominator) until a renderer formats
//! them: the page shows `12 (33.3%)`, the CSV gets `12` and `33.3` in two columns.
//!
//! Split tables: a table with `groups` has one block of `columns` per group (each arm,
//! then the total, in a closed report; "All subjects" in an open one). Tables too wide
//! for that (EDSS, MRI) repeat their rows per group instead, with the arm as a stub
//! column; listings carry the arm as their first column in a closed report. What goes
//! into each section is built in `sections/`, one file per section.

use chrono::NaiveDate;
use serde::Serialize;

/// One value of a table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    /// `n (p%)` of a denominator; just `n` when `n` or the denominator is 0.
    Count {
        n: usize,
        of: usize,
    },
    Int(i64),
    /// A number with fixed decimals; `signed` shows a leading + on positive values.
    Num {
        value: f64,
        places: usize,
        signed: bool,
    },
    Text(String),
    /// `min–max` of whole numbers.
    Range(i64, i64),
    /// No value: an em dash on the page, an empty CSV field.
    Missing,
}

impl Cell {
    pub fn count(n: usize, of: usize) -> Self {
        Self::Count { n, of }
    }

    pub fn int(n: usize) -> Self {
        Self::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }

    pub fn num(value: Option<f64>, places: usize) -> Self {
        value.map_or(Self::Missing, |value| Self::Num { value, places, signed: false })
    }

    pub fn text(s: impl Into<String>) -> Self {
        Self::Text(s.into())
    }

    /// The percentage, with one decimal, when there is a denominator.
    pub fn percent(&self) -> Option<String> {
        match *self {
            Self::Count { n, of } if of > 0 => Some(format!("{:.1}", 100.0 * n as f64 / of as f64)),
            _ => None,
        }
    }

    /// The text shown on the page and in the PDF.
    pub fn display(&self) -> String {
        match self {
            Self::Count { n, .. } if *n == 0 => "0".to_string(),
            Self::Count { n, .. } => match self.percent() {
                Some(p) => format!("{n} ({p}%)"),
                None => n.to_string(),
            },
            Self::Int(n) => n.to_string(),
            Self::Num { .. } => self.plain(),
            Self::Text(s) => s.clone(),
            Self::Range(..) => self.plain(),
            Self::Missing => "—".to_string(),
        }
    }

    /// The value alone (the count without its percentage), for CSV.
    pub fn plain(&self) -> String {
        match self {
            Self::Count { n, .. } => n.to_string(),
            Self::Int(n) => n.to_string(),
            Self::Num { value, places, signed } => {
                // No "-0.0": a rounded zero is zero.
                let v = if format!("{:.*}", places, value.abs()).trim_matches(['0', '.']).is_empty() {
                    0.0
                } else {
                    *value
                };
                if *signed && v > 0.0 {
                    format!("+{v:.places$}")
                } else {
                    format!("{v:.places$}")
                }
            }
            Self::Text(s) => s.clone(),
            Self::Range(a, b) => format!("{a}–{b}"),
            Self::Missing => String::new(),
        }
    }

    /// Whether the value is a number (right-aligned); `None` for a missing value, which
    /// takes the alignment of its column.
    fn is_numeric(&self) -> Option<bool> {
        match self {
            Self::Text(_) => Some(false),
            Self::Missing => None,
            _ => Some(true),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    /// Labels, one per stub column.
    pub stub: Vec<String>,
    /// One per column (per group when the table is split).
    pub cells: Vec<Cell>,
    /// A total or heading row.
    pub strong: bool,
    /// A sub-row (a preferred term under its SOC, a reason under "discontinued").
    pub indent: bool,
}

impl Row {
    pub(crate) fn new(stub: impl Into<String>, cells: Vec<Cell>) -> Self {
        Self { stub: vec![stub.into()], cells, strong: false, indent: false }
    }
    pub(crate) fn strong(mut self) -> Self {
        self.strong = true;
        self
    }
    pub(crate) fn indent(mut self) -> Self {
        self.indent = true;
        self
    }
}

/// A column group: one arm, or all subjects, with its N.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Group {
    pub label: String,
    pub n: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Table {
    /// File-name stem of the table's CSV.
    pub id: String,
    pub title: String,
    pub stub: Vec<String>,
    /// Empty for listings and other unsplit tables.
    pub groups: Vec<Group>,
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
    /// Shown instead of the table when it has no rows.
    pub empty: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Chart {
    pub title: String,
    /// What the chart shows and how to read it.
    pub caption: String,
    /// A complete SVG document (plotters).
    pub svg: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Section {
    pub title: String,
    pub notes: Vec<String>,
    /// Computed statements, shown in bold.
    pub findings: Vec<String>,
    pub tables: Vec<Table>,
    pub charts: Vec<Chart>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Document {
    pub title: String,
    pub closed: bool,
    /// "OPEN REPORT" or "CLOSED REPORT — DSMB ONLY".
    pub marking: String,
    /// What the marking means for the reader.
    pub blinding_note: String,
    /// The cut-off instant in the study's zone, naming it ("2026-03-29 23:59 CEST
    /// (Europe/Stockholm)", or "… UTC"); clinical dates in tables are the sites' own.
    pub cutoff: String,
    /// The cut-off's calendar date in the study's zone.
    pub cutoff_date: NaiveDate,
    pub snapshot_hash: String,
    /// The audit trail's head when the report was made.
    pub audit_head: String,
    pub sections: Vec<Section>,
}

impl Document {
    /// Every table, in document order.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.sections.iter().flat_map(|s| &s.tables)
    }
}

pub(crate) const OPEN_MARKING: &str = "OPEN REPORT";
pub(crate) const CLOSED_MARKING: &str = "CLOSED REPORT — DSMB ONLY";

/// The document as plain strings, for the HTML template and the typst template.
#[derive(Debug, Serialize)]
pub(crate) struct DocumentView {
    pub title: String,
    pub closed: bool,
    pub marking: String,
    pub blinding_note: String,
    pub cutoff: String,
    pub cutoff_date: [u32; 3],
    pub snapshot_hash: String,
    pub audit_head: String,
    pub sections: Vec<SectionView>,
}

#[derive(Debug, Serialize)]
pub(crate) struct SectionView {
    pub number: usize,
    pub title: String,
    pub notes: Vec<String>,
    pub findings: Vec<String>,
    pub tables: Vec<TableView>,
    pub charts: Vec<ChartView>,
}

#[derive(Debug, Serialize)]
pub(crate) struct TableView {
    pub id: String,
    pub title: String,
    pub stub: Vec<String>,
    /// "Placebo (N=86)"; empty when the table is not split.
    pub groups: Vec<String>,
    pub columns: Vec<String>,
    /// Every value column header, repeated per group.
    pub headers: Vec<String>,
    /// Stub plus value columns.
    pub width: usize,
    pub rows: Vec<RowView>,
    pub empty: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct RowView {
    pub stub: Vec<String>,
    pub cells: Vec<CellView>,
    pub strong: bool,
    pub indent: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct CellView {
    pub text: String,
    pub num: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct ChartView {
    pub title: String,
    pub caption: String,
    pub svg: String,
}

impl Document {
    /// The view both templates read. `svg` adapts each chart to its destination.
    pub fn view(&self, svg: impl Fn(&str) -> String) -> DocumentView {
        use chrono::Datelike;
        DocumentView {
            title: self.title.clone(),
            closed: self.closed,
            marking: self.marking.clone(),
            blinding_note: self.blinding_note.clone(),
            cutoff: self.cutoff.clone(),
            cutoff_date: [
                u32::try_from(self.cutoff_date.year()).unwrap_or(1970),
                self.cutoff_date.month(),
                self.cutoff_date.day(),
            ],
            snapshot_hash: self.snapshot_hash.clone(),
            audit_head: self.audit_head.clone(),
            sections: self
                .sections
                .iter()
                .enumerate()
                .map(|(i, s)| SectionView {
                    number: i + 1,
                    title: s.title.clone(),
                    notes: s.notes.clone(),
                    findings: s.findings.clone(),
                    tables: s.tables.iter().map(Table::view).collect(),
                    charts: s
                        .charts
                        .iter()
                        .map(|c| ChartView {
                            title: c.title.clone(),
                            caption: c.caption.clone(),
                            svg: svg(&c.svg),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl Table {
    fn view(&self) -> TableView {
        let groups: Vec<String> = self.groups.iter().map(|g| format!("{} (N={})", g.label, g.n)).collect();
        let headers: Vec<String> = if self.groups.is_empty() {
            self.columns.clone()
        } else {
            self.groups.iter().flat_map(|_| self.columns.iter().cloned()).collect()
        };
        // A column is right-aligned when every value in it is a number.
        let width = self.columns.len().max(1);
        let numeric: Vec<bool> = (0..width)
            .map(|c| {
                let mut cells = self.rows.iter().flat_map(|r| r.cells.iter().skip(c).step_by(width));
                cells.all(|cell| cell.is_numeric() != Some(false))
            })
            .collect();
        TableView {
            id: self.id.clone(),
            title: self.title.clone(),
            stub: self.stub.clone(),
            groups,
            columns: self.columns.clone(),
            width: self.stub.len() + headers.len(),
            headers,
            rows: self
                .rows
                .iter()
                .map(|r| RowView {
                    stub: r.stub.clone(),
                    cells: r
                        .cells
                        .iter()
                        .enumerate()
                        .map(|(i, c)| CellView { text: c.display(), num: numeric[i % width] })
                        .collect(),
                    strong: r.strong,
                    indent: r.indent,
                })
                .collect(),
            empty: self.empty.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_printed_in_the_studys_zone_and_names_it() {
        use crate::report::tests::{cohort, Fixture};
        use chrono::TimeZone;
        let f = Fixture::new(cohort());
        // 22:30 UTC on 2020-03-29 is already 00:30 on the 30th in Stockholm (CEST).
        let as_of = chrono::Utc.with_ymd_and_hms(2020, 3, 29, 22, 30, 0).unwrap();
        let input =
            crate::report::DsmbInput { as_of, timezone: chrono_tz::Tz::Europe__Stockholm, ..f.input() };
        let html = crate::report::try_render_html(&input, &crate::report::summarize(&input)).unwrap();
        assert!(
            html.contains("Data cut-off: <strong>2020-03-30 00:30 CEST (Europe&#x2f;Stockholm)</strong>"),
            "{html}"
        );
        let utc = crate::report::DsmbInput { as_of, ..f.input() };
        let html = crate::report::try_render_html(&utc, &crate::report::summarize(&utc)).unwrap();
        assert!(html.contains("Data cut-off: <strong>2020-03-29 22:30 UTC</strong>"));
    }

    #[test]
    fn cells_format_counts_with_their_percentage() {
        assert_eq!(Cell::count(1, 3).display(), "1 (33.3%)");
        assert_eq!(Cell::count(2, 3).display(), "2 (66.7%)");
        assert_eq!(Cell::count(0, 3).display(), "0");
        assert_eq!(Cell::count(3, 0).display(), "3");
        assert_eq!(Cell::count(1, 3).plain(), "1");
        assert_eq!(Cell::count(1, 3).percent().as_deref(), Some("33.3"));
        let signed = |v: f64| Cell::Num { value: v, places: 2, signed: true }.display();
        assert_eq!(signed(0.3), "+0.30");
        assert_eq!(signed(-0.5), "-0.50");
        assert_eq!(signed(-0.001), "0.00", "no negative zero");
        assert_eq!(Cell::Missing.display(), "—");
        assert_eq!(Cell::Missing.plain(), "");
    }
}

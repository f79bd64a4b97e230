//! The sections of the DSMB report, one file each, in the order the report prints them.
//!
//! Each file holds what its section needs: the numbers computed from the data cut (called
//! by `summary::summarize`, per group of subjects where the section is split by arm) and
//! the tables, findings and charts that present them (called by [`document`]). This file
//! holds the table-building vocabulary the sections share.

pub(crate) mod adverse_events;
pub(crate) mod alerts;
pub(crate) mod data_quality;
pub(crate) mod edss;
pub(crate) mod enrollment;
pub(crate) mod exposure;
pub(crate) mod infusion;
pub(crate) mod liver;
pub(crate) mod mri;
pub(crate) mod overview;
pub(crate) mod serious_and_deaths;
pub(crate) mod stopping_rules;

use super::document::{Cell, Document, Group, Row, Table, CLOSED_MARKING, OPEN_MARKING};
use super::{DsmbInput, DsmbSummary, GroupSummary};

/// Build the document of a report: its sections in report order. Pure, like every section.
pub(crate) fn document(input: &DsmbInput, s: &DsmbSummary) -> Document {
    let (marking, blinding_note) = if s.closed {
        (
            CLOSED_MARKING,
            "Closed session. Every table is split by treatment arm and every listing names the arm: \
             for the members of the DSMB only; never send this report to a blinded recipient.",
        )
    } else {
        (
            OPEN_MARKING,
            "Open session. Pooled data: no treatment allocation is shown. Subjects appear only by \
             pseudonymous subject ID; times are study days (day 1 = first dose).",
        )
    };
    let sections = vec![
        overview::section(s),
        enrollment::section(s),
        exposure::section(s),
        adverse_events::section(s),
        serious_and_deaths::section(s),
        infusion::section(s),
        liver::section(s),
        edss::section(input.edss_rule, s),
        mri::section(s),
        stopping_rules::section(s),
        alerts::section(s),
        data_quality::section(s),
    ];
    Document {
        title: input.study_title.to_string(),
        closed: s.closed,
        marking: marking.to_string(),
        blinding_note: blinding_note.to_string(),
        cutoff: crate::model::local_text(input.timezone, input.as_of),
        cutoff_date: crate::model::local_day(input.timezone, input.as_of),
        snapshot_hash: input.snapshot_hash.to_string(),
        audit_head: input.audit_head.to_string(),
        sections,
    }
}

/// The column groups of a split table, each with its N.
fn groups(cols: &[&GroupSummary]) -> Vec<Group> {
    cols.iter().map(|g| Group { label: g.label.clone(), n: g.n() }).collect()
}

/// The column groups of a safety table: in a closed report, arms with no dosed subject
/// (N = 0, e.g. screen failures) are left out; they appear in the enrollment tables.
fn safety_groups(s: &DsmbSummary) -> Vec<&GroupSummary> {
    s.arms.iter().filter(|g| g.n() > 0).chain(std::iter::once(&s.total)).collect()
}

/// A table split by group: `cells` gives the block of one group.
fn split_table(
    cols: &[&GroupSummary],
    id: &str,
    title: &str,
    stub: &[&str],
    columns: &[&str],
    rows: Vec<Row>,
) -> Table {
    Table {
        id: id.to_string(),
        title: title.to_string(),
        stub: stub.iter().map(|h| h.to_string()).collect(),
        groups: groups(cols),
        columns: columns.iter().map(|h| h.to_string()).collect(),
        rows,
        empty: String::new(),
    }
}

/// One row of a split table: the cells of every group, side by side.
fn row(cols: &[&GroupSummary], label: impl Into<String>, cells: impl Fn(&GroupSummary) -> Vec<Cell>) -> Row {
    Row::new(label, cols.iter().copied().flat_map(cells).collect())
}

/// A listing: no groups; in a closed report the arm comes first.
fn listing(s: &DsmbSummary, id: &str, title: &str, headers: &[&str], empty: &str) -> Table {
    let mut columns: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    if s.closed {
        columns.insert(0, "Arm".to_string());
    }
    Table {
        id: id.to_string(),
        title: title.to_string(),
        stub: Vec::new(),
        groups: Vec::new(),
        columns,
        rows: Vec::new(),
        empty: empty.to_string(),
    }
}

/// A listing row; the arm cell is added in a closed report.
fn listing_row(s: &DsmbSummary, arm: Option<&str>, mut cells: Vec<Cell>) -> Row {
    if s.closed {
        cells.insert(0, Cell::text(arm.unwrap_or_default()));
    }
    Row { stub: Vec::new(), cells, strong: false, indent: false }
}

/// Sentences about each group, prefixed with the arm in a closed report.
fn per_group(s: &DsmbSummary, sentence: impl Fn(&GroupSummary) -> Option<String>) -> Vec<String> {
    s.groups()
        .into_iter()
        .filter_map(|g| sentence(g).map(|t| if s.closed { format!("{}: {t}", g.label) } else { t }))
        .collect()
}

/// A listing's grade: the CTCAE number, or "not graded".
fn grade_text(g: Option<crate::model::CtcaeGrade>) -> Cell {
    g.map_or_else(|| Cell::text("not graded"), |g| Cell::Int(i64::from(g.value())))
}

/// A listing's study day; a day from a partial date says so.
fn study_day_cell(day: Option<i64>, partial: bool) -> Cell {
    match (day, partial) {
        (Some(d), false) => Cell::Int(d),
        (Some(d), true) => Cell::text(format!("{d} (partial date)")),
        (None, _) => Cell::Missing,
    }
}

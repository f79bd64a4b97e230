//! The report as a document: numbered sections of typed tables, findings and charts.
//!
//! HTML, CSV and PDF are all rendered from this one model, so they carry the same
//! numbers. Cells stay typed (a count keeps its denominator) until a renderer formats
//! them: the page shows `12 (33.3%)`, the CSV gets `12` and `33.3` in two columns.
//!
//! Split tables: a table with `groups` has one block of `columns` per group (each arm,
//! then the total, in a closed report; "All subjects" in an open one). Tables too wide
//! for that (EDSS, MRI) repeat their rows per group instead, with the arm as a stub
//! column; listings carry the arm as their first column in a closed report.

use super::charts;
use super::summary::{
    AeLine, DeathSource, DoseTiming, GradeTable, GroupSummary, InfusionReaction, Quadrant, Tally,
    ICH_CRITERIA,
};
use super::terms::TermTally;
use super::{DsmbInput, DsmbSummary};
use crate::model::MinimumChange;
use chrono::NaiveDate;
use serde::Serialize;
use std::collections::BTreeSet;

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
    fn new(stub: impl Into<String>, cells: Vec<Cell>) -> Self {
        Self { stub: vec![stub.into()], cells, strong: false, indent: false }
    }
    fn strong(mut self) -> Self {
        self.strong = true;
        self
    }
    fn indent(mut self) -> Self {
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
    pub cutoff: String,
    pub cutoff_date: NaiveDate,
    pub snapshot_hash: String,
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

/// Build the document of a report. Pure, like everything in this module.
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
        overview(s),
        enrollment(s),
        exposure(s),
        adverse_events(s),
        serious_and_deaths(s),
        infusion(s),
        liver(s),
        edss(input.edss_change, s),
        mri(s),
        stopping_rules(s),
        alerts(s),
        data_quality(s),
    ];
    Document {
        title: input.study_title.to_string(),
        closed: s.closed,
        marking: marking.to_string(),
        blinding_note: blinding_note.to_string(),
        cutoff: input.as_of.format("%Y-%m-%d %H:%M UTC").to_string(),
        cutoff_date: input.as_of.date_naive(),
        snapshot_hash: input.snapshot_hash.to_string(),
        sections,
    }
}

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

fn overview(s: &DsmbSummary) -> Section {
    let cols = s.groups();
    let ae = |label: &str, f: fn(&GroupSummary) -> usize| {
        row(&cols, label, move |g| vec![Cell::count(f(g), g.n())])
    };
    let rows = vec![
        row(&cols, "Screened", |g| vec![Cell::int(g.disposition.screened)]),
        row(&cols, "Enrolled", |g| vec![Cell::int(g.disposition.enrolled)]),
        row(&cols, "Dosed (safety population, N)", |g| vec![Cell::int(g.n())]).strong(),
        ae("Completed the study", |g| g.disposition.completed),
        ae("Left the study early", |g| g.disposition.discontinued_total()),
        row(&cols, "Doses given", |g| vec![Cell::int(g.exposure.doses)]),
        ae("Subjects with any adverse event", |g| g.adverse_events.grades.any.subjects),
        ae("… with a grade ≥ 3 adverse event", |g| g.adverse_events.grade3_plus.subjects),
        ae("… with a related adverse event", |g| g.adverse_events.related.subjects),
        ae("… with a serious adverse event", |g| g.adverse_events.serious.subjects),
        ae("… with an adverse event leading to discontinuation", |g| {
            g.adverse_events.discontinued.subjects
        }),
        ae("Deaths (fatal adverse event)", |g| g.adverse_events.fatal.subjects),
        ae("Potential Hy's law cases", |g| g.labs.quadrants.potential_hys_law),
    ];
    let fired: Vec<&str> = s.stopping_rules.iter().filter(|r| r.fired).map(|r| r.rule_id.as_str()).collect();
    let rules = match (s.stopping_rules.len(), fired.len()) {
        (0, _) => "Stopping rules: none configured.".to_string(),
        (n, 0) => format!("Stopping rules: none of {n} fired."),
        (n, k) => format!("Stopping rules: {k} of {n} FIRED ({}).", fired.join(", ")),
    };
    let by_status: Vec<String> = s
        .alerts
        .statuses
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let n: usize = s.alerts.by_severity.iter().map(|r| r.by_status[i]).sum();
            format!("{st}: {n}")
        })
        .collect();
    let alerts = if s.alerts.total == 0 {
        "Alerts raised in the period: none.".to_string()
    } else {
        format!("Alerts raised in the period: {} ({}).", s.alerts.total, by_status.join(", "))
    };
    let mut findings = per_group(s, |g| Some(g.disposition.sentence()));
    findings.push(rules);
    findings.push(alerts);
    Section {
        title: "Overview".to_string(),
        notes: vec!["Percentages are of N, the dosed subjects (safety population) of each column. Adverse \
             events are the current version of each event; a subject is counted once per row."
            .to_string()],
        findings,
        tables: vec![split_table(&cols, "key_figures", "Key figures", &["Measure"], &["n (%)"], rows)],
        charts: Vec::new(),
    }
}

fn enrollment(s: &DsmbSummary) -> Section {
    let cols = s.groups();
    let count = |label: &str, f: fn(&GroupSummary) -> usize| {
        row(&cols, label, move |g| vec![Cell::count(f(g), g.n())])
    };
    let mut rows = vec![
        row(&cols, "Screened (any record)", |g| vec![Cell::int(g.disposition.screened)]),
        row(&cols, "Screen failures", |g| vec![Cell::int(g.disposition.screen_failures)]).indent(),
        row(&cols, "Enrolled", |g| vec![Cell::int(g.disposition.enrolled)]),
        row(&cols, "Enrolled, not dosed", |g| vec![Cell::int(g.disposition.enrolled.saturating_sub(g.n()))])
            .indent(),
        row(&cols, "Dosed (safety population, N)", |g| vec![Cell::int(g.n())]).strong(),
        count("Completed the study", |g| g.disposition.completed),
        count("On study (no disposition yet)", |g| g.disposition.ongoing),
        count("Left the study early", |g| g.disposition.discontinued_total()),
    ];
    // Every reason seen in any group, in the total's order.
    let mut reasons: Vec<String> = Vec::new();
    for g in s.groups().into_iter().rev() {
        for d in &g.disposition.discontinued {
            if !reasons.contains(&d.label()) {
                reasons.push(d.label());
            }
        }
    }
    for reason in reasons {
        let r = reason.clone();
        rows.push(
            row(&cols, reason, move |g| {
                let n =
                    g.disposition.discontinued.iter().filter(|d| d.label() == r).map(|d| d.subjects).sum();
                vec![Cell::count(n, g.n())]
            })
            .indent(),
        );
    }
    let visits: Vec<Row> = s
        .visits
        .iter()
        .enumerate()
        .map(|(i, v)| {
            row(&cols, v.clone(), move |g| {
                let c = &g.disposition.visits[i];
                vec![Cell::int(c.subjects), Cell::count(c.dosed, g.n())]
            })
        })
        .collect();
    let mut visit_table = split_table(
        &cols,
        "visits_completed",
        "Subjects with a record at each visit",
        &["Visit"],
        &["Subjects (all)", "Dosed n (%)"],
        visits,
    );
    visit_table.empty = "No visits recorded.".to_string();
    Section {
        title: "Enrollment and disposition".to_string(),
        notes: vec!["Screened: any record up to the cut-off. Enrolled: screened and not a screen failure. \
             Disposition rows count dosed subjects by their latest disposition."
            .to_string()],
        findings: Vec::new(),
        tables: vec![
            split_table(&cols, "disposition", "Enrollment and disposition", &["Subjects"], &["n (%)"], rows),
            visit_table,
        ],
        charts: vec![Chart {
            title: "Enrollment over time".to_string(),
            caption: "Cumulative number of dosed subjects by the date of their first dose.".to_string(),
            svg: charts::enrollment(&s.charts, s.closed),
        }],
    }
}

fn exposure(s: &DsmbSummary) -> Section {
    let cols = safety_groups(s);
    let range = |min: Option<i64>, max: Option<i64>| match (min, max) {
        (Some(a), Some(b)) => Cell::Range(a, b),
        _ => Cell::Missing,
    };
    let as_i64 = |v: Option<usize>| v.and_then(|v| i64::try_from(v).ok());
    let mut rows = vec![
        row(&cols, "Dosed subjects (N)", |g| vec![Cell::int(g.exposure.subjects)]).strong(),
        row(&cols, "Doses given", |g| vec![Cell::int(g.exposure.doses)]),
        row(&cols, "Doses per subject, mean", |g| vec![Cell::num(g.exposure.mean_doses, 1)]),
        row(&cols, "Doses per subject, median", |g| vec![Cell::num(g.exposure.median_doses, 1)]),
        row(&cols, "Doses per subject, min–max", move |g| {
            vec![range(as_i64(g.exposure.min_doses), as_i64(g.exposure.max_doses))]
        }),
    ];
    let counts: BTreeSet<usize> =
        cols.iter().flat_map(|g| g.exposure.per_subject.iter().map(|(k, _)| *k)).collect();
    for k in counts {
        let label = if k == 1 { "1 dose".to_string() } else { format!("{k} doses") };
        rows.push(
            row(&cols, label, move |g| {
                let n = g.exposure.per_subject.iter().find(|(c, _)| *c == k).map_or(0, |(_, n)| *n);
                vec![Cell::count(n, g.n())]
            })
            .indent(),
        );
    }
    rows.push(row(&cols, "Days from first to last dose, mean", |g| vec![Cell::num(g.exposure.mean_days, 1)]));
    rows.push(row(&cols, "Days from first to last dose, min–max", move |g| {
        vec![range(g.exposure.min_days, g.exposure.max_days)]
    }));
    Section {
        title: "Exposure".to_string(),
        notes: vec![
            "A dose is one administration record (repeats of the same start and product are one dose). \
             Days run from the first dose to the end (else start) of the last, both included."
                .to_string(),
        ],
        tables: vec![split_table(
            &cols,
            "exposure",
            "Exposure to study treatment",
            &["Measure"],
            &["Value"],
            rows,
        )],
        ..Section::default()
    }
}

/// Subjects n (%) and events for one tally.
fn tally_cells(t: Tally, n: usize) -> Vec<Cell> {
    vec![Cell::count(t.subjects, n), Cell::int(t.events)]
}

fn grade_rows(cols: &[&GroupSummary], grades: impl Fn(&GroupSummary) -> GradeTable + Copy) -> Vec<Row> {
    const LABELS: [&str; 5] = [
        "Grade 1 (mild)",
        "Grade 2 (moderate)",
        "Grade 3 (severe)",
        "Grade 4 (life-threatening)",
        "Grade 5 (death)",
    ];
    let mut rows: Vec<Row> = LABELS
        .iter()
        .enumerate()
        .map(|(i, label)| row(cols, *label, move |g| tally_cells(grades(g).by_grade[i], g.n())))
        .collect();
    rows.push(row(cols, "Not graded", move |g| tally_cells(grades(g).not_graded, g.n())));
    rows.push(row(cols, "Any grade", move |g| tally_cells(grades(g).any, g.n())).strong());
    rows
}

fn term_cells(t: Option<&TermTally>, n: usize) -> Vec<Cell> {
    let t = t.copied().unwrap_or_default();
    vec![Cell::count(t.subjects, n), Cell::count(t.grade3_plus(), n), Cell::int(t.events)]
}

fn adverse_events(s: &DsmbSummary) -> Section {
    let cols = safety_groups(s);
    let t = |label: &str, f: fn(&GroupSummary) -> Tally| row(&cols, label, move |g| tally_cells(f(g), g.n()));
    let mut overview = vec![
        t("Any adverse event", |g| g.adverse_events.grades.any).strong(),
        t("Related (possible, probable or definite)", |g| g.adverse_events.related),
        t("Grade ≥ 3", |g| g.adverse_events.grade3_plus),
        t("Serious", |g| g.adverse_events.serious),
    ];
    for c in ICH_CRITERIA {
        overview.push(
            row(&cols, capitalise(c.label()), move |g| tally_cells(g.adverse_events.criterion(c), g.n()))
                .indent(),
        );
    }
    if cols.iter().any(|g| g.adverse_events.serious_without_criterion.events > 0) {
        overview.push(t("Criterion not recorded", |g| g.adverse_events.serious_without_criterion).indent());
    }
    overview.push(t("Leading to discontinuation of treatment", |g| g.adverse_events.discontinued));
    overview.push(t("Fatal (grade 5, death criterion or fatal outcome)", |g| g.adverse_events.fatal));

    // SOC and term rows in the total's order; each group looks its own numbers up by key.
    let mut by_term = vec![Row {
        stub: vec!["Any adverse event".to_string(), String::new()],
        cells: cols.iter().flat_map(|g| term_cells(Some(&g.by_term.any), g.n())).collect(),
        strong: true,
        indent: false,
    }];
    for soc in &s.total.by_term.socs {
        by_term.push(Row {
            stub: vec![soc.soc.clone(), String::new()],
            cells: cols
                .iter()
                .flat_map(|g| term_cells(g.by_term.soc(&soc.key).map(|r| &r.tally), g.n()))
                .collect(),
            strong: true,
            indent: false,
        });
        for term in &soc.terms {
            by_term.push(Row {
                stub: vec![soc.soc.clone(), term.term.clone()],
                cells: cols
                    .iter()
                    .flat_map(|g| {
                        let found = g.by_term.soc(&soc.key).and_then(|r| r.term(&term.key)).map(|r| &r.tally);
                        term_cells(found, g.n())
                    })
                    .collect(),
                strong: false,
                indent: true,
            });
        }
    }
    Section {
        title: "Adverse events".to_string(),
        notes: vec!["Adverse events of the safety population, current version of each event. Events are \
             counted at their own grade; a subject is counted once per row, at their worst grade. \
             By SOC and preferred term where MedDRA-coded, else by the reported term (grouped \
             regardless of letter case)."
            .to_string()],
        findings: Vec::new(),
        tables: vec![
            split_table(
                &cols,
                "ae_overview",
                "Overview of adverse events",
                &["Adverse events"],
                &["Subjects n (%)", "Events"],
                overview,
            ),
            split_table(
                &cols,
                "ae_by_grade",
                "Adverse events by worst CTCAE grade",
                &["Grade"],
                &["Subjects n (%)", "Events"],
                grade_rows(&cols, |g| g.adverse_events.grades),
            ),
            split_table(
                &cols,
                "ae_by_soc_pt",
                "Adverse events by system organ class and preferred term",
                &["System organ class", "Preferred term"],
                &["Subjects n (%)", "Grade ≥ 3 n (%)", "Events"],
                by_term,
            ),
        ],
        charts: vec![Chart {
            title: "Adverse events by grade over time".to_string(),
            caption: "Adverse events by onset in 4-week buckets of study time (day 1 = first dose), \
                      stacked by CTCAE grade, with the total on each bar. The bar left of week 0 \
                      gathers every onset before the first dose; events without an onset date \
                      are not shown."
                .to_string(),
            svg: charts::ae_by_grade(&s.charts),
        }],
    }
}

fn grade_text(g: Option<crate::model::CtcaeGrade>) -> Cell {
    g.map_or_else(|| Cell::text("not graded"), |g| Cell::Int(i64::from(g.value())))
}

fn study_day_cell(day: Option<i64>, partial: bool) -> Cell {
    match (day, partial) {
        (Some(d), false) => Cell::Int(d),
        (Some(d), true) => Cell::text(format!("{d} (partial date)")),
        (None, _) => Cell::Missing,
    }
}

fn sae_row(s: &DsmbSummary, a: &AeLine) -> Row {
    let criteria: Vec<&str> = a.criteria.iter().map(|c| c.label()).collect();
    listing_row(
        s,
        a.arm.as_deref(),
        vec![
            Cell::text(a.subject.as_str()),
            a.ae_id.as_deref().map_or(Cell::Missing, Cell::text),
            Cell::text(a.term.as_str()),
            grade_text(a.grade),
            if criteria.is_empty() { Cell::text("not recorded") } else { Cell::text(criteria.join(", ")) },
            study_day_cell(a.onset_study_day, a.onset_partial),
            a.outcome.as_deref().map_or(Cell::Missing, Cell::text),
            a.related.map_or(Cell::Missing, |r| Cell::text(r.label())),
            Cell::text(if a.discontinued { "yes" } else { "no" }),
        ],
    )
}

fn serious_and_deaths(s: &DsmbSummary) -> Section {
    let mut saes = listing(
        s,
        "sae_listing",
        "Listing of serious adverse events",
        &[
            "Subject",
            "AE id",
            "Term",
            "Grade",
            "Seriousness",
            "Onset study day",
            "Outcome",
            "Relatedness",
            "Discontinued",
        ],
        "No serious adverse events recorded.",
    );
    saes.rows = s.total.serious_listing.iter().map(|a| sae_row(s, a)).collect();
    let mut deaths = listing(
        s,
        "death_listing",
        "Listing of deaths",
        &["Subject", "Cause", "Source", "Grade", "Study day", "Outcome"],
        "No deaths recorded.",
    );
    deaths.rows = s
        .total
        .deaths
        .iter()
        .map(|d| {
            listing_row(
                s,
                d.arm.as_deref(),
                vec![
                    Cell::text(d.subject.as_str()),
                    d.cause.as_deref().map_or(Cell::text("not recorded"), Cell::text),
                    Cell::text(match d.source {
                        DeathSource::AdverseEvent => "fatal adverse event",
                        DeathSource::Disposition => "disposition only",
                    }),
                    d.grade.map_or(Cell::Missing, |g| Cell::Int(i64::from(g.value()))),
                    d.study_day.map_or(Cell::Missing, Cell::Int),
                    d.outcome.as_deref().map_or(Cell::Missing, Cell::text),
                ],
            )
        })
        .collect();
    Section {
        title: "Serious adverse events and deaths".to_string(),
        notes: vec![
            "Study days count from the first dose (day 1; no day 0). A death's study day is the end \
             (else onset) of the fatal event, or the disposition date."
                .to_string(),
        ],
        tables: vec![saes, deaths],
        ..Section::default()
    }
}

fn infusion(s: &DsmbSummary) -> Section {
    let cols = safety_groups(s);
    let terms: Vec<String> = s.total.infusion_reactions.terms.iter().map(|t| format!("“{t}”")).collect();
    let mut list = listing(
        s,
        "infusion_listing",
        "Listing of infusion reactions",
        &["Subject", "AE id", "Term", "Grade", "Serious", "Onset study day", "Onset", "Relatedness"],
        "No infusion reactions recorded.",
    );
    list.rows = s.total.infusion_reactions.listing.iter().map(|r| irr_row(s, r)).collect();
    Section {
        title: "Infusion reactions".to_string(),
        notes: vec![format!(
            "Adverse events coded as: {}. Time is measured from the start of the latest dose that \
             began before onset.",
            if terms.is_empty() { "(no terms configured)".to_string() } else { terms.join(", ") }
        )],
        tables: vec![
            split_table(
                &cols,
                "infusion_by_grade",
                "Infusion reactions by worst CTCAE grade",
                &["Grade"],
                &["Subjects n (%)", "Events"],
                grade_rows(&cols, |g| g.infusion_reactions.grades),
            ),
            list,
        ],
        ..Section::default()
    }
}

fn irr_row(s: &DsmbSummary, r: &InfusionReaction) -> Row {
    listing_row(
        s,
        r.arm.as_deref(),
        vec![
            Cell::text(r.subject.as_str()),
            r.ae_id.as_deref().map_or(Cell::Missing, Cell::text),
            Cell::text(r.term.as_str()),
            grade_text(r.grade),
            Cell::text(if r.serious { "yes" } else { "no" }),
            study_day_cell(r.onset_study_day, r.onset_partial),
            Cell::text(describe_timing(r.timing)),
            r.related.map_or(Cell::Missing, |x| Cell::text(x.label())),
        ],
    )
}

fn liver(s: &DsmbSummary) -> Section {
    let cols = safety_groups(s);
    let count = |label: &str, f: fn(&GroupSummary) -> usize| {
        row(&cols, label, move |g| vec![Cell::count(f(g), g.n())])
    };
    let abnormal = vec![
        count("Subjects with a liver test", |g| g.labs.subjects_tested),
        count("ALT > 3×ULN", |g| g.labs.alt_above_3),
        count("AST > 3×ULN", |g| g.labs.ast_above_3),
        count("ALT or AST > 3×ULN", |g| g.labs.alt_or_ast_above_3),
        count("Total bilirubin > 2×ULN", |g| g.labs.bili_above_2),
    ];
    let quadrants = vec![
        count("Potential Hy's law (ALT/AST ≥ 3×ULN, bilirubin ≥ 2×ULN)", |g| {
            g.labs.quadrants.potential_hys_law
        }),
        count("Cholestasis (ALT/AST < 3×ULN, bilirubin ≥ 2×ULN)", |g| g.labs.quadrants.cholestasis),
        count("Temple's corollary (ALT/AST ≥ 3×ULN, bilirubin < 2×ULN)", |g| {
            g.labs.quadrants.temples_corollary
        }),
        count("Normal (ALT/AST < 3×ULN, bilirubin < 2×ULN)", |g| g.labs.quadrants.normal),
        count("Subjects plotted", |g| g.labs.quadrants.plotted()).strong(),
    ];
    let mut outside = listing(
        s,
        "edish_listing",
        "Subjects outside the normal eDISH quadrant",
        &["Subject", "Peak ALT or AST (×ULN)", "Peak total bilirubin (×ULN)", "Quadrant"],
        "Every plotted subject is in the normal quadrant.",
    );
    let mut points: Vec<_> = s.total.labs.points.iter().filter(|p| p.quadrant != Quadrant::Normal).collect();
    points.sort_by(|a, b| (a.quadrant, &a.subject).cmp(&(b.quadrant, &b.subject)));
    outside.rows = points
        .into_iter()
        .map(|p| {
            listing_row(
                s,
                p.arm.as_deref(),
                vec![
                    Cell::text(p.subject.as_str()),
                    Cell::num(Some(p.alt_ast_x_uln), 2),
                    Cell::num(Some(p.bili_x_uln), 2),
                    Cell::text(p.quadrant.label()),
                ],
            )
        })
        .collect();
    Section {
        title: "Liver tests and Hy's law".to_string(),
        notes: vec![
            "ALT (SGPT), AST (SGOT) and total bilirubin (BILI, TBILI) of the safety population, each \
             value divided by its own sample's upper limit of normal; every sample up to the cut-off \
             counts, screening included. Abnormality rows use > (strictly above); the eDISH quadrants \
             use the peak of each subject and ≥, as in the FDA eDISH plot. A potential Hy's law case \
             needs clinical review (other causes, ALP, timing)."
                .to_string(),
        ],
        findings: Vec::new(),
        tables: vec![
            split_table(
                &cols,
                "liver_abnormalities",
                "Liver test abnormalities",
                &["Subjects"],
                &["n (%)"],
                abnormal,
            ),
            split_table(
                &cols,
                "edish_quadrants",
                "eDISH quadrants (peak values per subject)",
                &["Quadrant"],
                &["n (%)"],
                quadrants,
            ),
            outside,
        ],
        charts: vec![Chart {
            title: "eDISH: peak ALT or AST vs peak total bilirubin".to_string(),
            caption: "One point per subject; both axes are multiples of the upper limit of normal on a \
                      log scale. Dashed lines at 3×ULN (ALT/AST) and 2×ULN (bilirubin)."
                .to_string(),
            svg: charts::edish(&s.total.labs.points, s.closed),
        }],
    }
}

fn edss(rule: &MinimumChange, s: &DsmbSummary) -> Section {
    let mut stub = vec!["Visit"];
    if s.closed {
        stub.insert(0, "Arm");
    }
    let mut rows = Vec::new();
    for g in s.groups() {
        for e in &g.edss.by_visit {
            let mut labels = vec![e.visit.clone()];
            if s.closed {
                labels.insert(0, g.label.clone());
            }
            rows.push(Row {
                stub: labels,
                cells: vec![
                    Cell::int(e.assessed),
                    Cell::Num { value: e.mean_change, places: 2, signed: true },
                    Cell::count(e.worse, e.assessed),
                    Cell::count(e.stable, e.assessed),
                    Cell::count(e.better, e.assessed),
                ],
                strong: false,
                indent: false,
            });
        }
    }
    let table = Table {
        id: "edss_by_visit".to_string(),
        title: "EDSS change from baseline by visit".to_string(),
        stub: stub.iter().map(|h| h.to_string()).collect(),
        groups: Vec::new(),
        columns: ["Assessed", "Mean change", "Worse n (%)", "Stable n (%)", "Better n (%)"]
            .map(String::from)
            .to_vec(),
        rows,
        empty: "No post-baseline EDSS assessments recorded.".to_string(),
    };
    let mut findings: Vec<String> = Vec::new();
    for g in s.groups() {
        let prefix = if s.closed { format!("{}: ", g.label) } else { String::new() };
        findings.extend(g.edss.by_visit.iter().map(|e| format!("{prefix}{}", e.sentence())));
        if g.edss.followed > 0 {
            findings.push(format!("{prefix}{}", g.edss.confirmed_sentence()));
        }
    }
    let baseline: Vec<String> = per_group(s, |g| {
        Some(format!(
            "Subjects with a baseline: {}{}.",
            g.edss.baseline_subjects,
            g.edss.baseline_mean.map(|m| format!(", mean baseline EDSS {m:.2}")).unwrap_or_default()
        ))
    });
    let mut notes = vec![format!(
        "Baseline is each subject's first EDSS. Worse or better means a change of at least the \
         trial's minimum ({}); anything smaller is stable. Percentages are of the subjects assessed \
         at the visit. Confirmed worsening: confirmed at least 12 weeks (84 days, −7 days) later, \
         fixed baseline, no confirmation within 30 days of a relapse.",
        describe_rule(rule)
    )];
    notes.extend(baseline);
    Section {
        title: "EDSS change from baseline".to_string(),
        notes,
        findings,
        tables: vec![table],
        charts: vec![Chart {
            title: "EDSS trajectories".to_string(),
            caption: "EDSS of each dosed subject over study weeks (week 0 = first dose), one line per \
                      subject."
                .to_string(),
            svg: charts::edss(&s.charts.edss, s.closed),
        }],
    }
}

fn mri(s: &DsmbSummary) -> Section {
    let mut stub = vec!["Visit"];
    if s.closed {
        stub.insert(0, "Arm");
    }
    let mut rows = Vec::new();
    let mut findings = Vec::new();
    for g in s.groups() {
        for m in &g.mri {
            let mut labels = vec![m.visit.clone()];
            if s.closed {
                labels.insert(0, g.label.clone());
                findings.push(format!("{}: {}", g.label, m.sentence()));
            } else {
                findings.push(m.sentence());
            }
            rows.push(Row {
                stub: labels,
                cells: vec![
                    Cell::int(m.scans),
                    Cell::int(m.subjects_scanned),
                    Cell::Int(i64::try_from(m.total_new_t2).unwrap_or(i64::MAX)),
                    Cell::count(m.subjects_with_new_t2, m.subjects_scanned),
                    Cell::Int(i64::try_from(m.total_gd).unwrap_or(i64::MAX)),
                    Cell::count(m.subjects_with_gd, m.subjects_gd_read),
                    Cell::text(reference(m.against_previous, m.against_baseline)),
                ],
                strong: false,
                indent: false,
            });
        }
    }
    let table = Table {
        id: "mri_by_visit".to_string(),
        title: "MRI: new or enlarging T2 and gadolinium-enhancing lesions by visit".to_string(),
        stub: stub.iter().map(|h| h.to_string()).collect(),
        groups: Vec::new(),
        columns: [
            "Scans",
            "Subjects scanned",
            "New/enlarging T2 lesions",
            "Subjects with ≥ 1 new T2 n (%)",
            "Gd+ lesions",
            "Subjects with ≥ 1 Gd+ n (%)",
            "Counted against",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        empty: "No MRI scans recorded.".to_string(),
    };
    Section {
        title: "MRI activity".to_string(),
        notes: vec![
            "Counts as reported per scan, against the reference scan shown. Subjects scanned are those \
             with a scan that carries a new/enlarging T2 count; Gd+ percentages are of the subjects \
             with a Gd+ count."
                .to_string(),
        ],
        findings,
        tables: vec![table],
        charts: vec![Chart {
            title: "MRI new lesions per visit".to_string(),
            caption: "Total new or enlarging T2 lesions and gadolinium-enhancing lesions at each visit, \
                      all subjects."
                .to_string(),
            svg: charts::mri(&s.total.mri),
        }],
    }
}

fn stopping_rules(s: &DsmbSummary) -> Section {
    let mut t = Table {
        id: "stopping_rules".to_string(),
        title: "Stopping rules and their status at the cut-off".to_string(),
        stub: Vec::new(),
        groups: Vec::new(),
        columns: ["Rule", "Title", "Stop when", "Current value", "Status"].map(String::from).to_vec(),
        rows: Vec::new(),
        empty: "No stopping rules configured.".to_string(),
    };
    t.rows = s
        .stopping_rules
        .iter()
        .map(|r| Row {
            stub: Vec::new(),
            cells: vec![
                Cell::text(r.rule_id.as_str()),
                Cell::text(r.title.as_str()),
                Cell::text(r.threshold.as_str()),
                Cell::text(r.current.as_str()),
                Cell::text(if r.fired { "FIRED" } else { "not fired" }),
            ],
            strong: r.fired,
            indent: false,
        })
        .collect();
    Section {
        title: "Stopping rules".to_string(),
        notes: vec![
            "Each rule as configured in the trial's rule file, restated with its current value.".to_string()
        ],
        tables: vec![t],
        ..Section::default()
    }
}

fn alerts(s: &DsmbSummary) -> Section {
    let a = &s.alerts;
    let mut columns = a.statuses.clone();
    columns.push("Total".to_string());
    let mut by_severity = Table {
        id: "alerts_by_severity".to_string(),
        title: "Alerts by severity and acknowledgement status".to_string(),
        stub: vec!["Severity".to_string()],
        groups: Vec::new(),
        columns,
        rows: Vec::new(),
        empty: "No alerts were raised in the period.".to_string(),
    };
    by_severity.rows = a
        .by_severity
        .iter()
        .map(|r| {
            let mut cells: Vec<Cell> = r.by_status.iter().map(|n| Cell::int(*n)).collect();
            cells.push(Cell::int(r.total));
            Row::new(r.severity.clone(), cells)
        })
        .collect();
    if !a.by_severity.is_empty() {
        let mut cells: Vec<Cell> = (0..a.statuses.len())
            .map(|i| Cell::int(a.by_severity.iter().map(|r| r.by_status[i]).sum()))
            .collect();
        cells.push(Cell::int(a.total));
        by_severity.rows.push(Row::new("All", cells).strong());
    }
    let mut list = Table {
        id: "alerts_listing".to_string(),
        title: "Listing of alerts raised in the period".to_string(),
        stub: Vec::new(),
        groups: Vec::new(),
        columns: ["#", "Severity", "Status", "Subject", "Rule", "Alert", "Raised"].map(String::from).to_vec(),
        rows: Vec::new(),
        empty: "No alerts were raised in the period.".to_string(),
    };
    list.rows = a
        .listing
        .iter()
        .map(|l| Row {
            stub: Vec::new(),
            cells: vec![
                Cell::Int(l.id),
                Cell::text(l.severity.as_str()),
                Cell::text(l.status.as_str()),
                Cell::text(if l.subject.is_empty() { "cohort" } else { l.subject.as_str() }),
                Cell::text(l.rule_id.as_str()),
                Cell::text(l.title.as_str()),
                Cell::text(match l.raised_study_day {
                    Some(d) => format!("study day {d}"),
                    None => l.raised_date.format("%Y-%m-%d").to_string(),
                }),
            ],
            strong: false,
            indent: false,
        })
        .collect();
    Section {
        title: "Alerts in the period".to_string(),
        notes: vec!["Alerts raised up to the cut-off with their status now: open alerts were not yet \
             acknowledged. Subject alerts are dated by the subject's study day; cohort alerts by date."
            .to_string()],
        tables: vec![by_severity, list],
        ..Section::default()
    }
}

fn data_quality(s: &DsmbSummary) -> Section {
    let q = &s.data_quality;
    let mut items: Vec<(&str, usize)> = vec![
        (
            "Quarantined records (refused at import)",
            usize::try_from(q.quarantined_records).unwrap_or(usize::MAX),
        ),
        ("Records dated after the data cut-off (left out)", q.records_after_cutoff),
        ("Alerts raised after the data cut-off (left out)", q.alerts_after_cutoff),
        ("Overdue visits", q.overdue_visits),
        ("Adverse events without an onset date", q.ae_onset_missing),
        ("Adverse events with a partial onset date (earliest plausible date used)", q.ae_onset_partial),
        ("Adverse events of subjects never dosed (not in the safety tables)", q.ae_not_dosed),
        ("Fatal adverse events not marked serious (to query)", q.fatal_not_serious),
        ("Liver test results without an upper limit of normal (not evaluable)", q.liver_results_without_uln),
        (
            "Post-baseline EDSS assessments without a visit label (not in the EDSS table)",
            q.edss_without_visit,
        ),
        ("MRI scans without a visit label (not in the MRI table)", q.mri_without_visit),
    ];
    if s.closed {
        items.push(("Subjects whose records name no arm", q.subjects_without_arm));
    }
    let counts = Table {
        id: "data_quality".to_string(),
        title: "Data quality".to_string(),
        stub: vec!["Item".to_string()],
        groups: Vec::new(),
        columns: vec!["Count".to_string()],
        rows: items.into_iter().map(|(label, n)| Row::new(label, vec![Cell::int(n)])).collect(),
        empty: String::new(),
    };
    let overdue = Table {
        id: "overdue_visits".to_string(),
        title: "Overdue visits".to_string(),
        stub: Vec::new(),
        groups: Vec::new(),
        columns: ["Subject", "Visit", "Days overdue"].map(String::from).to_vec(),
        rows: s
            .overdue_visits
            .iter()
            .map(|o| Row {
                stub: Vec::new(),
                cells: vec![
                    Cell::text(o.subject.as_str()),
                    Cell::text(o.visit.as_str()),
                    Cell::Int(o.days_overdue),
                ],
                strong: false,
                indent: false,
            })
            .collect(),
        empty: "No visit is overdue.".to_string(),
    };
    Section {
        title: "Data quality".to_string(),
        notes: Vec::new(),
        findings: vec![q.sentence()],
        tables: vec![counts, overdue],
        charts: Vec::new(),
    }
}

pub(crate) fn describe_timing(t: DoseTiming) -> String {
    match t {
        DoseTiming::AfterDose { dose, minutes: Some(m) } => {
            format!("{} after the start of dose {dose}", duration(m))
        }
        DoseTiming::AfterDose { dose, minutes: None } => {
            format!("after dose {dose} (dose start time not recorded)")
        }
        DoseTiming::NoPrecedingDose => "before the first dose".to_string(),
        DoseTiming::OnsetTimeUnknown => "onset time not recorded".to_string(),
    }
}

/// `25 min`, `3 h 10 min`, `2 h`, then `3 d 4 h` from 48 hours on.
pub(crate) fn duration(minutes: i64) -> String {
    let (h, m) = (minutes / 60, minutes % 60);
    match (h, m) {
        (0, m) => format!("{m} min"),
        (h, 0) if h < 48 => format!("{h} h"),
        (h, m) if h < 48 => format!("{h} h {m} min"),
        (h, _) => format!("{} d {} h", h / 24, h % 24),
    }
}

fn reference(previous: usize, baseline: usize) -> String {
    match (previous, baseline) {
        (_, 0) => "previous scan".to_string(),
        (0, _) => "baseline scan".to_string(),
        (p, b) => format!("mixed: {p} previous, {b} baseline"),
    }
}

/// "baseline ≤ 0.0: +1.5; baseline ≤ 5.0: +1.0; higher baseline: +0.5"
pub(crate) fn describe_rule(rule: &MinimumChange) -> String {
    rule.steps()
        .iter()
        .map(|s| match s.baseline_up_to {
            Some(up) => format!("baseline ≤ {up:.1}: {:+.1}", s.by),
            None => format!("higher baseline: {:+.1}", s.by),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

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
    fn durations_read_as_minutes_hours_days() {
        assert_eq!(duration(0), "0 min");
        assert_eq!(duration(55), "55 min");
        assert_eq!(duration(120), "2 h");
        assert_eq!(duration(190), "3 h 10 min");
        assert_eq!(duration(48 * 60 + 61), "2 d 1 h");
    }

    #[test]
    fn the_rule_is_described_from_its_steps() {
        assert_eq!(
            describe_rule(&MinimumChange::variant_a()),
            "baseline ≤ 0.0: +1.5; baseline ≤ 5.0: +1.0; higher baseline: +0.5"
        );
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

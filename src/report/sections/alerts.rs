//! Section "Alerts in the period": alerts raised up to the cut-off by severity and status
//! (as they stand now), and listed by raising time.

use crate::model::ClinicalTime;
use crate::report::cut::Member;
use crate::report::document::{Cell, Row, Section, Table};
use crate::report::{DsmbInput, DsmbSummary};
use crate::store::AlertRow;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// Alerts of one severity, by status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeverityRow {
    pub severity: String,
    /// Aligned with [`AlertSummary::statuses`].
    pub by_status: Vec<usize>,
    pub total: usize,
}

/// One alert of the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertLine {
    pub id: i64,
    pub severity: String,
    pub status: String,
    /// Empty for cohort alerts.
    pub subject: String,
    pub rule_id: String,
    pub title: String,
    /// Study day of the subject when it was raised, if the subject has a first dose.
    pub raised_study_day: Option<i64>,
    /// The raising day (UTC); shown only where no study day exists (cohort alerts).
    pub raised_date: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSummary {
    pub total: usize,
    /// open, acknowledged, resolved, silenced, then any other status by name.
    pub statuses: Vec<String>,
    /// critical, warning, info, then any other severity by name.
    pub by_severity: Vec<SeverityRow>,
    /// Ordered by raising time, then id.
    pub listing: Vec<AlertLine>,
}

impl AlertSummary {
    /// Alerts still open (not acknowledged, resolved or silenced).
    pub fn open(&self) -> usize {
        self.listing.iter().filter(|a| a.status == "open").count()
    }
}

/// Report order: the known values first, the rest by name.
fn ranked(known: &[&str], values: impl Iterator<Item = String>) -> Vec<String> {
    let seen: BTreeSet<String> = values.collect();
    let mut out: Vec<String> = known.iter().filter(|k| seen.contains(**k)).map(|k| k.to_string()).collect();
    out.extend(seen.into_iter().filter(|s| !known.contains(&s.as_str())));
    out
}

/// Alerts raised up to the cut-off, by severity and status, and listed. Also returns how
/// many were raised after it.
pub(crate) fn alert_summary(input: &DsmbInput, members: &[Member]) -> (AlertSummary, usize) {
    let kept: Vec<&AlertRow> = input.alerts.iter().filter(|a| a.raised_at <= input.as_of).collect();
    let after = input.alerts.len() - kept.len();
    let statuses = ranked(
        &["open", "acknowledged", "resolved", "silenced"],
        kept.iter().map(|a| a.status.as_str().to_lowercase()),
    );
    let severities =
        ranked(&["critical", "warning", "info"], kept.iter().map(|a| a.severity.as_str().to_lowercase()));
    let by_severity = severities
        .iter()
        .map(|sev| {
            let of_sev: Vec<&&AlertRow> =
                kept.iter().filter(|a| a.severity.as_str().eq_ignore_ascii_case(sev)).collect();
            SeverityRow {
                severity: sev.clone(),
                by_status: statuses
                    .iter()
                    .map(|st| of_sev.iter().filter(|a| a.status.as_str().eq_ignore_ascii_case(st)).count())
                    .collect(),
                total: of_sev.len(),
            }
        })
        .collect();
    let first_dose: BTreeMap<&str, ClinicalTime> = members
        .iter()
        .filter_map(|m| m.h.first_dose().map(|d| (m.h.subject.as_str(), d.start.clone())))
        .collect();
    let mut listing: Vec<(DateTime<Utc>, AlertLine)> = kept
        .iter()
        .map(|a| {
            let day = first_dose
                .get(a.subject.as_str())
                .map(|first| ClinicalTime::at(a.raised_at).study_day(first));
            let line = AlertLine {
                id: a.id,
                severity: a.severity.as_str().to_lowercase(),
                status: a.status.as_str().to_lowercase(),
                subject: a.subject.clone(),
                rule_id: a.rule_id.clone(),
                title: a.title.clone(),
                raised_study_day: day,
                raised_date: a.raised_at.date_naive(),
            };
            (a.raised_at, line)
        })
        .collect();
    listing.sort_by_key(|(t, a)| (*t, a.id));
    let summary = AlertSummary {
        total: kept.len(),
        statuses,
        by_severity,
        listing: listing.into_iter().map(|(_, a)| a).collect(),
    };
    (summary, after)
}

// --- the section in the report ---------------------------------------------------------

/// Section "Alerts in the period".
pub(crate) fn section(s: &DsmbSummary) -> Section {
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

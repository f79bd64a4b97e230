//! Section "Alerts in the period": alerts whose finding falls up to the cut-off (by its
//! clinical time: the onset, sample, scan or visit that made it fire, not when the alert was
//! raised, so a back-filled trial shows its alerts), by severity and status (as they stand
//! now), and listed by that time.

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
    /// Study day of the finding's clinical time, if the subject has a first dose.
    pub finding_study_day: Option<i64>,
    /// The finding's day (UTC); shown only where no study day exists (cohort alerts).
    pub finding_date: NaiveDate,
    /// When the alert was raised (UTC): later than the finding for back-filled data.
    pub raised_date: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSummary {
    pub total: usize,
    /// open, acknowledged, resolved, silenced, then any other status by name.
    pub statuses: Vec<String>,
    /// critical, warning, info, then any other severity by name.
    pub by_severity: Vec<SeverityRow>,
    /// Ordered by the findings' clinical time, then id.
    pub listing: Vec<AlertLine>,
    /// Electronically signed decisions on the alerts listed: (alert id, signature).
    pub signed: Vec<(i64, String)>,
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

/// When an alert's finding happened: its clinical time; an alert without one (raised before
/// the column existed) by its raising time.
fn finding_time(a: &AlertRow) -> DateTime<Utc> {
    a.clinical_time.unwrap_or(a.raised_at)
}

/// Alerts whose finding falls up to the cut-off, by severity and status, and listed. Also
/// returns how many fall after it.
pub(crate) fn alert_summary(input: &DsmbInput, members: &[Member]) -> (AlertSummary, usize) {
    let kept: Vec<&AlertRow> = input.alerts.iter().filter(|a| finding_time(a) <= input.as_of).collect();
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
            let at = finding_time(a);
            let day = first_dose.get(a.subject.as_str()).map(|first| ClinicalTime::at(at).study_day(first));
            let line = AlertLine {
                id: a.id,
                severity: a.severity.as_str().to_lowercase(),
                status: a.status.as_str().to_lowercase(),
                subject: a.subject.clone(),
                rule_id: a.rule_id.clone(),
                title: a.title.clone(),
                finding_study_day: day,
                finding_date: at.date_naive(),
                raised_date: a.raised_at.date_naive(),
            };
            (at, line)
        })
        .collect();
    listing.sort_by_key(|(t, a)| (*t, a.id));
    let ids: BTreeSet<i64> = kept.iter().map(|a| a.id).collect();
    let signed = input.signed_decisions.iter().filter(|(id, _)| ids.contains(id)).cloned().collect();
    let summary = AlertSummary {
        total: kept.len(),
        statuses,
        by_severity,
        listing: listing.into_iter().map(|(_, a)| a).collect(),
        signed,
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
        columns: ["#", "Severity", "Status", "Subject", "Rule", "Alert", "Finding", "Raised"]
            .map(String::from)
            .to_vec(),
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
                Cell::text(match l.finding_study_day {
                    Some(d) => format!("study day {d}"),
                    None => l.finding_date.format("%Y-%m-%d").to_string(),
                }),
                Cell::text(l.raised_date.format("%Y-%m-%d").to_string()),
            ],
            strong: false,
            indent: false,
        })
        .collect();
    Section {
        title: "Alerts in the period".to_string(),
        notes: vec!["Alerts whose finding falls up to the cut-off, with their status now: open alerts \
             were not yet acknowledged. Finding: when it happened clinically (the onset, sample, \
             reading, scan or visit that made the rule fire; for reporting clocks, the clock's start), \
             as the subject's study day, by date for cohort alerts. Raised: when vigil raised it, \
             later than the finding for data entered after the fact."
            .to_string()],
        tables: if a.signed.is_empty() {
            vec![by_severity, list]
        } else {
            vec![by_severity, list, signed(a)]
        },
        ..Section::default()
    }
}

/// The signed decisions on the period's alerts (21 CFR Part 11 §11.50: the signature is
/// shown wherever the record is).
fn signed(a: &AlertSummary) -> Table {
    Table {
        id: "alerts_signed".to_string(),
        title: "Electronically signed decisions".to_string(),
        stub: Vec::new(),
        groups: Vec::new(),
        columns: ["#", "Signature"].map(String::from).to_vec(),
        rows: a
            .signed
            .iter()
            .map(|(id, line)| Row {
                stub: Vec::new(),
                cells: vec![Cell::Int(*id), Cell::text(line.as_str())],
                strong: false,
                indent: false,
            })
            .collect(),
        empty: String::new(),
    }
}

/// Tests through the whole report on the constructed cohort of `report::tests`.
#[cfg(test)]
mod report_tests {
    use crate::report::tests::*;
    use chrono::TimeZone;

    #[test]
    fn a_back_filled_trial_lists_the_alerts_whose_finding_falls_before_the_cutoff() {
        let mut f = Fixture::new(cohort());
        // Entered in 2026 for findings of 2019: the cut-off (2020-03-01) goes by the finding.
        let clinical = |a: &mut crate::store::AlertRow, y, m, d| {
            a.clinical_time = Some(chrono::Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap());
        };
        let mut early = alert(1, "KS-101", "warning", "open", (2026, 11, 1));
        clinical(&mut early, 2019, 3, 11);
        let mut late = alert(2, "KS-102", "warning", "open", (2026, 11, 1));
        clinical(&mut late, 2020, 6, 1);
        f.alerts = vec![early, late];
        let s = f.summary();
        let ids: Vec<i64> = s.alerts.listing.iter().map(|a| a.id).collect();
        assert_eq!(ids, [1], "the 2019 finding is in, the 2020-06 one after the cut-off");
        assert_eq!(s.alerts.listing[0].finding_study_day, Some(8), "KS-101 dosed 2019-03-04");
        assert_eq!(s.data_quality.alerts_after_cutoff, 1);
        let html = f.html();
        assert!(html.contains("<td>study day 8</td><td>2026-11-01</td>"), "finding and raising dates");
    }
}

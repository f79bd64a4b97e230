//! Section "Data quality": what the numbers leave out or cannot evaluate (quarantined
//! records, records and alerts after the cut-off, missing or partial dates, results
//! without a ULN, assessments without a visit), and the visits overdue at the cut-off.

use super::adverse_events::is_fatal;
use super::liver::liver_test;
use crate::report::cut::{Member, NO_ARM};
use crate::report::document::{Cell, Row, Section, Table};
use crate::report::{DsmbInput, DsmbSummary};
use serde::Serialize;

/// A scheduled visit not recorded by the end of its window (plus grace) at the cut-off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverdueVisit {
    pub subject: String,
    pub visit: String,
    /// Whole days past the end of the window at the cut-off.
    pub days_overdue: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataQuality {
    pub quarantined_records: u64,
    /// Records dated after the data cut-off: left out of every number.
    pub records_after_cutoff: usize,
    /// Alerts whose finding falls after the cut-off (by clinical time): left out.
    pub alerts_after_cutoff: usize,
    /// Post-baseline EDSS assessments without a visit label (not in the visit table).
    pub edss_without_visit: usize,
    /// MRI scans without a visit label (not in the visit table).
    pub mri_without_visit: usize,
    pub ae_onset_missing: usize,
    pub ae_onset_partial: usize,
    /// Adverse events of subjects never dosed (not in the safety tables).
    pub ae_not_dosed: usize,
    /// Fatal adverse events not marked serious (a contradiction to query).
    pub fatal_not_serious: usize,
    /// Not serious, yet a seriousness criterion or a fatal outcome is recorded
    /// (`AdverseEvent::seriousness_inconsistent`): to query with the site.
    pub seriousness_inconsistent: usize,
    /// ALT, AST or bilirubin results without an upper limit of normal (not evaluable).
    pub liver_results_without_uln: usize,
    pub overdue_visits: usize,
    /// Closed report: subjects whose records name no arm.
    pub subjects_without_arm: usize,
}

impl DataQuality {
    /// `Quarantined records: {n}.`
    pub fn sentence(&self) -> String {
        format!("Quarantined records: {}.", self.quarantined_records)
    }
}

pub(crate) fn data_quality(
    input: &DsmbInput,
    members: &[Member],
    records_after_cutoff: usize,
    alerts_after_cutoff: usize,
) -> DataQuality {
    let mut q = DataQuality {
        quarantined_records: input.quarantined_records,
        records_after_cutoff,
        alerts_after_cutoff,
        overdue_visits: input.overdue_visits.len(),
        subjects_without_arm: members.iter().filter(|m| m.arm == Some(NO_ARM)).count(),
        ..DataQuality::default()
    };
    for m in members {
        let events = m.h.adverse_events();
        if !m.dosed {
            q.ae_not_dosed += events.len();
        }
        q.fatal_not_serious += events.iter().filter(|a| is_fatal(a) && !a.serious).count();
        q.seriousness_inconsistent += events.iter().filter(|a| a.seriousness_inconsistent()).count();
        for ae in events {
            match &ae.onset {
                None => q.ae_onset_missing += 1,
                Some(t) if t.is_partial() => q.ae_onset_partial += 1,
                Some(_) => {}
            }
        }
        q.liver_results_without_uln +=
            m.h.labs()
                .iter()
                .filter(|(_, _, l)| liver_test(&l.test).is_some() && !l.high.is_some_and(|h| h > 0.0))
                .count();
    }
    for m in members {
        q.edss_without_visit += m.h.edss().iter().skip(1).filter(|e| e.visit.is_none()).count();
        q.mri_without_visit += m.h.mri().iter().filter(|(v, _)| v.is_none()).count();
    }
    q
}

// --- the section in the report ---------------------------------------------------------

/// Section "Data quality".
pub(crate) fn section(s: &DsmbSummary) -> Section {
    let q = &s.data_quality;
    let mut items: Vec<(&str, usize)> = vec![
        (
            "Quarantined records (refused at import)",
            usize::try_from(q.quarantined_records).unwrap_or(usize::MAX),
        ),
        ("Records dated after the data cut-off (left out)", q.records_after_cutoff),
        ("Alerts whose finding falls after the data cut-off (left out)", q.alerts_after_cutoff),
        ("Overdue visits", q.overdue_visits),
        ("Adverse events without an onset date", q.ae_onset_missing),
        ("Adverse events with a partial onset date (earliest plausible date used)", q.ae_onset_partial),
        ("Adverse events of subjects never dosed (not in the safety tables)", q.ae_not_dosed),
        (
            "Adverse events with seriousness inconsistent — to query (not serious, yet a seriousness criterion or a fatal outcome is recorded)",
            q.seriousness_inconsistent,
        ),
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

/// Tests through the whole report on the constructed cohort of `report::tests`.
#[cfg(test)]
mod report_tests {
    use crate::report::tests::*;
    use crate::report::*;
    use chrono::TimeZone;

    #[test]
    fn data_quality_counts() {
        let q = Fixture::new(cohort()).summary().data_quality;
        assert_eq!(q.quarantined_records, 2);
        assert_eq!(q.records_after_cutoff, 0);
        assert_eq!(q.ae_onset_missing, 1, "KS-105 fatigue");
        assert_eq!(q.ae_onset_partial, 1, "KS-106 infection");

        let f = Fixture::new(cohort());
        let input =
            DsmbInput { as_of: chrono::Utc.with_ymd_and_hms(2019, 12, 31, 0, 0, 0).unwrap(), ..f.input() };
        let s = summarize(&input);
        assert_eq!(s.data_quality.records_after_cutoff, 5, "five W48 records");
        assert!(render_html(&input, &s)
            .contains("<td>Records dated after the data cut-off (left out)</td><td class=\"num\">5</td>"));
    }
}

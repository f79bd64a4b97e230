//! Section "Enrollment and disposition": screened, enrolled and dosed subjects, how the
//! dosed left the study (by status and reason), subjects with a record at each visit, and
//! the enrollment chart.

use super::{row, split_table};
use crate::model::DispositionStatus;
use crate::report::charts;
use crate::report::cut::Member;
use crate::report::document::{Cell, Chart, Row, Section};
use crate::report::{DsmbSummary, GroupSummary};
use std::collections::BTreeMap;

/// Subjects with at least one record carrying a visit label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitCompletion {
    pub visit: String,
    /// Every subject with a record at this visit (screening visits included).
    pub subjects: usize,
    /// Dosed subjects with a record at this visit (a share of N).
    pub dosed: usize,
}

/// Dosed subjects who left the study, by status and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discontinuation {
    pub status: DispositionStatus,
    pub reason: Option<String>,
    pub subjects: usize,
}

impl Discontinuation {
    /// "Withdrawn: adverse event", "Lost to follow-up", "Death".
    pub fn label(&self) -> String {
        let status = status_label(self.status);
        match &self.reason {
            Some(r) => format!("{status}: {r}"),
            None => status.to_string(),
        }
    }
}

fn status_label(s: DispositionStatus) -> &'static str {
    match s {
        DispositionStatus::Completed => "Completed",
        DispositionStatus::Withdrawn => "Withdrawn",
        DispositionStatus::ScreenFailure => "Screen failure",
        DispositionStatus::LostToFollowUp => "Lost to follow-up",
        DispositionStatus::Death => "Death",
    }
}

/// Report order of the statuses; the match fails to compile if a status is added.
fn status_rank(s: DispositionStatus) -> u8 {
    match s {
        DispositionStatus::Completed => 0,
        DispositionStatus::Withdrawn => 1,
        DispositionStatus::LostToFollowUp => 2,
        DispositionStatus::Death => 3,
        DispositionStatus::ScreenFailure => 4,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disposition {
    /// Subjects with any record up to the cut-off.
    pub screened: usize,
    /// Never dosed, with the disposition "screen failure".
    pub screen_failures: usize,
    /// Screened minus screen failures.
    pub enrolled: usize,
    /// Subjects with at least one dose: the safety population, N.
    pub dosed: usize,
    /// Dosed subjects whose latest disposition is "completed".
    pub completed: usize,
    /// Dosed subjects with no disposition yet.
    pub ongoing: usize,
    /// Dosed subjects who left early, by status then reason.
    pub discontinued: Vec<Discontinuation>,
    /// Every visit in report order, including protocol visits nobody has reached yet.
    pub visits: Vec<VisitCompletion>,
}

impl Disposition {
    /// No dosed subject has any disposition record: "completed 0" would read as nobody
    /// having completed, when the data simply do not say.
    pub fn none_recorded(&self) -> bool {
        self.dosed > 0 && self.ongoing == self.dosed
    }

    /// `Enrolled: {n}. Dosed: {n}.`
    pub fn sentence(&self) -> String {
        format!("Enrolled: {}. Dosed: {}.", self.enrolled, self.dosed)
    }

    /// Subjects with a record at `visit`, if the visit is known at all.
    pub fn completed(&self, visit: &str) -> Option<usize> {
        self.visits.iter().find(|v| v.visit == visit).map(|v| v.subjects)
    }

    /// Dosed subjects who left early, whatever the reason.
    pub fn discontinued_total(&self) -> usize {
        self.discontinued.iter().map(|d| d.subjects).sum()
    }
}

pub(crate) fn disposition(members: &[Member], visits: &[String]) -> Disposition {
    let screen_failures = members
        .iter()
        .filter(|m| {
            !m.dosed && m.h.disposition().is_some_and(|d| d.status == DispositionStatus::ScreenFailure)
        })
        .count();
    let mut completed = 0;
    let mut ongoing = 0;
    let mut left: BTreeMap<(u8, Option<String>), (DispositionStatus, usize)> = BTreeMap::new();
    for m in members.iter().filter(|m| m.dosed) {
        match m.h.disposition() {
            None => ongoing += 1,
            Some(d) if d.status == DispositionStatus::Completed => completed += 1,
            Some(d) => {
                let reason = d.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()).map(String::from);
                left.entry((status_rank(d.status), reason)).or_insert((d.status, 0)).1 += 1;
            }
        }
    }
    Disposition {
        screened: members.len(),
        screen_failures,
        enrolled: members.len() - screen_failures,
        dosed: members.iter().filter(|m| m.dosed).count(),
        completed,
        ongoing,
        discontinued: left
            .into_iter()
            .map(|((_, reason), (status, subjects))| Discontinuation { status, reason, subjects })
            .collect(),
        visits: visits
            .iter()
            .map(|v| {
                let at = |m: &&Member| m.h.records.iter().any(|r| r.visit.as_deref() == Some(v));
                VisitCompletion {
                    visit: v.clone(),
                    subjects: members.iter().filter(at).count(),
                    dosed: members.iter().filter(|m| m.dosed).filter(at).count(),
                }
            })
            .collect(),
    }
}

/// Said instead of completion counts when no dosed subject has a disposition record.
pub(crate) const NO_DISPOSITION: &str =
    "No disposition recorded: whether subjects completed the study or left it early is not known \
     from these data.";

// --- the section in the report ---------------------------------------------------------

/// Section "Enrollment and disposition".
pub(crate) fn section(s: &DsmbSummary) -> Section {
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
    let none_recorded = s.total.disposition.none_recorded();
    if none_recorded {
        // "Completed 0" would read as nobody completing; the data simply do not say.
        rows.retain(|r| !r.stub.iter().any(|s| s == "Completed the study" || s == "Left the study early"));
    }
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
        notes: std::iter::once(
            "Screened: any record up to the cut-off. Enrolled: screened and not a screen failure. \
             Disposition rows count dosed subjects by their latest disposition."
                .to_string(),
        )
        .chain(none_recorded.then(|| NO_DISPOSITION.to_string()))
        .collect(),
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

/// Tests through the whole report on the constructed cohort of `report::tests`.
#[cfg(test)]
mod report_tests {
    use crate::report::tests::*;

    #[test]
    fn disposition_counts_enrolled_dosed_and_each_visit_in_protocol_order() {
        let s = Fixture::new(cohort()).summary();
        assert_eq!(s.total.disposition.enrolled, 7);
        assert_eq!(s.total.disposition.dosed, 6);
        assert_eq!(s.total.disposition.sentence(), "Enrolled: 7. Dosed: 6.");
        // Protocol visits in their order; unlisted ones where they fall: SCR (only the
        // undosed KS-107 has one) by its date, UNS (KS-102, study day 99) by study day.
        assert_eq!(s.visits, ["SCR", "BL", "H2", "D7", "W4", "W12", "UNS", "W24", "W48"]);
        let completed: Vec<usize> = s.total.disposition.visits.iter().map(|v| v.subjects).collect();
        assert_eq!(completed, [1, 7, 6, 6, 6, 6, 1, 5, 5]);
        assert_eq!(s.total.disposition.completed("W48"), Some(5));
    }

    #[test]
    fn no_disposition_records_say_so_instead_of_completed_zero() {
        // The constructed cohort carries no disposition at all.
        let f = Fixture::new(cohort());
        assert!(f.summary().total.disposition.none_recorded());
        let html = f.html();
        assert!(!html.contains("<td>Completed the study</td>"), "no 'completed 0 of N' row");
        assert!(html.matches("No disposition recorded").count() >= 2, "said in overview and disposition");
        // One recorded disposition brings the rows back, with their counts.
        let mut subjects = cohort();
        subjects[0].records.push(rec("KS-101", "W48", r#","disposition":{"status":"completed"}"#));
        let f = Fixture::new(subjects);
        assert!(!f.summary().total.disposition.none_recorded());
        let html = f.html();
        assert!(html.contains("<td>Completed the study</td>"), "{html}");
        assert!(!html.contains("No disposition recorded"));
    }

    #[test]
    fn disposition_and_exposure() {
        let mut subjects = cohort();
        subjects[4].records.push(rec(
            "KS-105",
            "W24",
            r#","disposition":{"status":"withdrawn","reason":"adverse event","date":"2019-08-19"}"#,
        ));
        subjects[5].records.push(rec("KS-106", "W24", r#","disposition":{"status":"lost_to_follow_up"}"#));
        subjects[0].records.push(rec("KS-101", "W48", r#","disposition":{"status":"completed"}"#));
        // KS-102 got a second dose at W4.
        subjects[1].records.push(rec(
            "KS-102",
            "W4",
            r#","doses":[{"start":"2019-04-01T09:00:00+01:00","end":"2019-04-01T09:30:00+01:00"}]"#,
        ));
        subjects.push(history(
            "KS-108",
            vec![rec(
                "KS-108",
                "SCR",
                r#","disposition":{"status":"screen_failure","reason":"EDSS too high"}"#,
            )],
        ));
        let f = Fixture::new(subjects);
        let d = f.summary().total.disposition;
        assert_eq!((d.screened, d.screen_failures, d.enrolled, d.dosed), (8, 1, 7, 6));
        assert_eq!((d.completed, d.ongoing, d.discontinued_total()), (1, 3, 2));
        let labels: Vec<String> = d.discontinued.iter().map(|x| x.label()).collect();
        assert_eq!(labels, ["Withdrawn: adverse event", "Lost to follow-up"]);

        let e = f.summary().total.exposure;
        assert_eq!((e.subjects, e.doses), (6, 7));
        assert_eq!(e.per_subject, [(1, 5), (2, 1)]);
        assert_eq!((e.min_doses, e.max_doses, e.median_doses), (Some(1), Some(2), Some(1.0)));
        assert_eq!((e.min_days, e.max_days), (Some(1), Some(29)));

        let csv = f.csv_of("disposition");
        assert_eq!(csv_line(&csv, "Withdrawn: adverse event")[3..], ["1", "16.7"]);
        assert_eq!(csv_line(&csv, "Screen failures")[3..], ["1", ""]);
        let csv = f.csv_of("exposure");
        assert_eq!(csv_line(&csv, "2 doses")[3..], ["1", "16.7"]);
    }
}

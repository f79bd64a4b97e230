//! Section "Serious adverse events and deaths": the listing of serious adverse events and
//! the listing of deaths (fatal events, or a disposition of death without one), by study
//! day.

use super::adverse_events::{by_onset, criterion_index, is_fatal};
use super::{grade_text, listing, listing_row, study_day_cell};
use crate::model::{
    AdverseEvent, ClinicalTime, CtcaeGrade, DispositionStatus, GradeSource, Relatedness, Seriousness,
    SubjectId,
};
use crate::report::cut::{study_day, Member};
use crate::report::document::{Cell, Row, Section};
use crate::report::DsmbSummary;

/// One adverse event in a listing (SAE listing). Times are study days, never dates.
#[derive(Debug, Clone, PartialEq)]
pub struct AeLine {
    pub subject: SubjectId,
    /// Closed report only.
    pub arm: Option<String>,
    pub ae_id: Option<String>,
    /// The MedDRA preferred term when coded, else the reported term.
    pub term: String,
    pub grade: Option<CtcaeGrade>,
    /// The grade was mapped from severity, not assessed on the CTCAE scale.
    pub grade_mapped: bool,
    pub criteria: Vec<Seriousness>,
    pub onset_study_day: Option<i64>,
    pub onset_partial: bool,
    pub outcome: Option<String>,
    pub related: Option<Relatedness>,
    /// The source's own causality category when `related` is our reading of it.
    pub causality_reported: Option<String>,
    pub discontinued: bool,
}

/// Where a death is known from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathSource {
    /// A fatal adverse event (grade 5, the death criterion or a fatal outcome).
    AdverseEvent,
    /// Only the disposition says "death".
    Disposition,
}

/// One line of the death listing.
#[derive(Debug, Clone, PartialEq)]
pub struct DeathLine {
    pub subject: SubjectId,
    /// Closed report only.
    pub arm: Option<String>,
    /// The fatal event's term, or the disposition's reason.
    pub cause: Option<String>,
    pub source: DeathSource,
    pub grade: Option<CtcaeGrade>,
    pub grade_mapped: bool,
    pub study_day: Option<i64>,
    pub outcome: Option<String>,
}

/// The preferred term when coded, else the reported term.
fn display_term(a: &AdverseEvent) -> String {
    a.meddra_pt.clone().unwrap_or_else(|| a.term.clone())
}

pub(crate) fn serious_listing(dosed: &[Member]) -> Vec<AeLine> {
    let mut out = Vec::new();
    for m in dosed {
        let doses = m.h.doses();
        let mut serious: Vec<&AdverseEvent> =
            m.h.adverse_events().into_iter().filter(|a| a.serious).collect();
        by_onset(&mut serious);
        out.extend(serious.into_iter().map(|a| {
            let mut criteria = a.seriousness.clone();
            criteria.sort_by_key(|c| criterion_index(*c));
            AeLine {
                subject: m.h.subject.clone(),
                arm: m.arm.map(String::from),
                ae_id: a.id.clone(),
                term: display_term(a),
                grade: a.grade,
                grade_mapped: mapped(a),
                criteria,
                onset_study_day: study_day(a.onset.as_ref(), &doses),
                onset_partial: a.onset.as_ref().is_some_and(ClinicalTime::is_partial),
                outcome: a.outcome.clone(),
                related: a.related,
                causality_reported: a.causality_reported.clone(),
                discontinued: a.discontinued,
            }
        }));
    }
    out
}

/// Fatal events, and subjects whose disposition says death without a fatal event.
pub(crate) fn deaths(dosed: &[Member]) -> Vec<DeathLine> {
    let mut out = Vec::new();
    for m in dosed {
        let doses = m.h.doses();
        let mut fatal: Vec<&AdverseEvent> =
            m.h.adverse_events().into_iter().filter(|a| is_fatal(a)).collect();
        by_onset(&mut fatal);
        let line = |cause, source, grade, grade_mapped, day, outcome| DeathLine {
            subject: m.h.subject.clone(),
            arm: m.arm.map(String::from),
            cause,
            source,
            grade,
            grade_mapped,
            study_day: day,
            outcome,
        };
        for a in &fatal {
            let day = study_day(a.end.as_ref().or(a.onset.as_ref()), &doses);
            out.push(line(
                Some(display_term(a)),
                DeathSource::AdverseEvent,
                a.grade,
                mapped(a),
                day,
                a.outcome.clone(),
            ));
        }
        if fatal.is_empty() {
            if let Some(d) = m.h.disposition().filter(|d| d.status == DispositionStatus::Death) {
                let day = study_day(d.date.as_ref(), &doses);
                out.push(line(d.reason.clone(), DeathSource::Disposition, None, false, day, None));
            }
        }
    }
    out
}

fn mapped(a: &AdverseEvent) -> bool {
    a.grade.is_some() && a.grade_source == GradeSource::Severity
}

// --- the section in the report ---------------------------------------------------------

/// The grade, `3 (severity, mapped)` when it was mapped from severity.
fn grade_cell(grade: Option<CtcaeGrade>, mapped: bool) -> Cell {
    match grade {
        Some(g) if mapped => Cell::text(format!("{} (severity, mapped)", g.value())),
        _ => grade_text(grade),
    }
}

/// `possible`, or `possible (reported as "Conditional")`.
fn causality_cell(related: Option<Relatedness>, reported: Option<&str>) -> Cell {
    match (related, reported) {
        (Some(r), Some(orig)) => Cell::text(format!("{} (reported as \"{orig}\")", r.label())),
        (Some(r), None) => Cell::text(r.label()),
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
            grade_cell(a.grade, a.grade_mapped),
            if criteria.is_empty() { Cell::text("not recorded") } else { Cell::text(criteria.join(", ")) },
            study_day_cell(a.onset_study_day, a.onset_partial),
            a.outcome.as_deref().map_or(Cell::Missing, Cell::text),
            causality_cell(a.related, a.causality_reported.as_deref()),
            Cell::text(if a.discontinued { "yes" } else { "no" }),
        ],
    )
}

/// Section "Serious adverse events and deaths".
pub(crate) fn section(s: &DsmbSummary) -> Section {
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
                    d.grade.map_or(Cell::Missing, |g| grade_cell(Some(g), d.grade_mapped)),
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

/// Tests through the whole report on the constructed cohort of `report::tests`.
#[cfg(test)]
mod report_tests {
    use crate::model::Seriousness;
    use crate::report::tests::*;
    use crate::report::*;

    #[test]
    fn serious_and_fatal_events_are_listed_by_study_day() {
        let mut subjects = cohort();
        subjects[2].records.push(rec(
            "KS-103",
            "W12",
            &ae(
                Some("AE-7"),
                "Myocardial infarction",
                Some(5),
                Some("2019-05-20"),
                r#","seriousness":["death"],"outcome":"fatal","discontinued":true"#,
            ),
        ));
        subjects[3].records.push(rec(
            "KS-104",
            "W24",
            r#","disposition":{"status":"death","reason":"unknown cause","date":"2019-08-19"}"#,
        ));
        let f = Fixture::new(subjects);
        let s = f.summary();
        let ae = s.total.adverse_events;
        assert_eq!(ae.fatal, Tally { events: 1, subjects: 1 });
        assert_eq!(ae.discontinued, Tally { events: 1, subjects: 1 });
        assert_eq!(ae.grade3_plus, Tally { events: 2, subjects: 2 });
        assert_eq!(ae.serious, Tally { events: 2, subjects: 2 });
        assert_eq!(ae.criterion(Seriousness::Death), Tally { events: 1, subjects: 1 });

        let saes: Vec<(&str, &str, Option<i64>)> = s
            .total
            .serious_listing
            .iter()
            .map(|a| (a.subject.as_str(), a.term.as_str(), a.onset_study_day))
            .collect();
        assert_eq!(saes, [("KS-101", "Headache", Some(7)), ("KS-103", "Myocardial infarction", Some(78))]);
        let deaths: Vec<(&str, Option<&str>, DeathSource, Option<i64>)> = s
            .total
            .deaths
            .iter()
            .map(|d| (d.subject.as_str(), d.cause.as_deref(), d.source, d.study_day))
            .collect();
        assert_eq!(
            deaths,
            [
                ("KS-103", Some("Myocardial infarction"), DeathSource::AdverseEvent, Some(78)),
                ("KS-104", Some("unknown cause"), DeathSource::Disposition, Some(169)),
            ]
        );
        let html = f.html();
        assert!(!html.contains("2019-05-20"), "listings show study days, not dates");
        assert!(html.contains("<td>KS-103</td><td>AE-7</td><td>Myocardial infarction</td><td class=\"num\">5</td><td>death</td><td class=\"num\">78</td><td>fatal</td>"), "{html}");
    }
}

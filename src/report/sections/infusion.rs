//! Section "Infusion reactions": adverse events with one of the trial's infusion reaction
//! terms, by worst grade, and listed with the time from the start of the dose before them.

use super::adverse_events::{by_onset, grade_rows, GradeTable};
use super::{grade_text, listing, listing_row, safety_groups, split_table, study_day_cell};
use crate::model::{AdverseEvent, ClinicalTime, CtcaeGrade, Dose, Precision, Relatedness, SubjectId};
use crate::report::cut::{study_day, Member};
use crate::report::document::{Cell, Row, Section};
use crate::report::DsmbSummary;
use std::collections::BTreeSet;

/// When an infusion reaction began, relative to the dose before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoseTiming {
    /// Onset after the start of dose number `dose` (1 = first dose). `minutes` is
    /// `None` when the dose start has no time of day.
    AfterDose { dose: usize, minutes: Option<i64> },
    /// The onset is known to the minute but precedes every recorded dose.
    NoPrecedingDose,
    /// The onset is missing or has no time of day.
    OnsetTimeUnknown,
}

/// One line of the infusion reaction listing.
#[derive(Debug, Clone, PartialEq)]
pub struct InfusionReaction {
    pub subject: SubjectId,
    /// Closed report only.
    pub arm: Option<String>,
    pub ae_id: Option<String>,
    pub term: String,
    pub grade: Option<CtcaeGrade>,
    pub serious: bool,
    pub related: Option<Relatedness>,
    /// Study day of onset relative to the subject's first dose (day 1, no day 0).
    pub onset_study_day: Option<i64>,
    /// The onset date was partial; the study day is the earliest plausible one.
    pub onset_partial: bool,
    pub timing: DoseTiming,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InfusionSummary {
    /// The configured terms, as given.
    pub terms: Vec<String>,
    pub grades: GradeTable,
    /// Ordered by subject, then onset (unknown last).
    pub listing: Vec<InfusionReaction>,
}

pub(crate) fn infusion_summary(dosed: &[Member], terms: &[String]) -> InfusionSummary {
    // Matched as the adverse-event rules match: ignoring case, spaces and punctuation, on
    // the reported term or the MedDRA PT.
    let wanted: BTreeSet<String> =
        terms.iter().map(|t| crate::model::name_key(t)).filter(|k| !k.is_empty()).collect();
    let listed = |a: &AdverseEvent| {
        wanted.contains(&crate::model::name_key(&a.term))
            || a.meddra_pt.as_deref().is_some_and(|pt| wanted.contains(&crate::model::name_key(pt)))
    };
    let mut per_subject: Vec<Vec<&AdverseEvent>> = Vec::new();
    let mut listing = Vec::new();
    for m in dosed {
        let h = m.h;
        let mut irr: Vec<&AdverseEvent> = h.adverse_events().into_iter().filter(|a| listed(a)).collect();
        by_onset(&mut irr);
        let doses = h.doses();
        listing.extend(irr.iter().map(|a| InfusionReaction {
            subject: h.subject.clone(),
            arm: m.arm.map(String::from),
            ae_id: a.id.clone(),
            term: a.term.clone(),
            grade: a.grade,
            serious: a.serious,
            related: a.related,
            onset_study_day: study_day(a.onset.as_ref(), &doses),
            onset_partial: a.onset.as_ref().is_some_and(ClinicalTime::is_partial),
            timing: dose_timing(a.onset.as_ref(), &doses),
        }));
        per_subject.push(irr);
    }
    InfusionSummary { terms: terms.to_vec(), grades: GradeTable::from_subjects(&per_subject), listing }
}

/// Time from the start of the latest dose that began at or before the onset.
fn dose_timing(onset: Option<&ClinicalTime>, doses: &[&Dose]) -> DoseTiming {
    let Some(onset) = onset.filter(|o| o.precision() == Precision::Time) else {
        return DoseTiming::OnsetTimeUnknown;
    };
    let t = onset.earliest();
    match doses.iter().enumerate().rev().find(|(_, d)| d.start.earliest() <= t) {
        None => DoseTiming::NoPrecedingDose,
        Some((i, d)) => DoseTiming::AfterDose {
            dose: i + 1,
            minutes: (d.start.precision() == Precision::Time).then(|| (t - d.start.earliest()).num_minutes()),
        },
    }
}

// --- the section in the report ---------------------------------------------------------

/// Section "Infusion reactions".
pub(crate) fn section(s: &DsmbSummary) -> Section {
    let cols = safety_groups(s);
    // CTCAE grade or severity (mapped): the table's own events, else the data's.
    let grade_scale = |s: &DsmbSummary| match s.total.infusion_reactions.grades {
        g if g.any.events > 0 => g.scale().noun(),
        _ => s.total.adverse_events.grades.scale().noun(),
    };
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
                &format!("Infusion reactions by worst {}", grade_scale(s)),
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

fn describe_timing(t: DoseTiming) -> String {
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
fn duration(minutes: i64) -> String {
    let (h, m) = (minutes / 60, minutes % 60);
    match (h, m) {
        (0, m) => format!("{m} min"),
        (h, 0) if h < 48 => format!("{h} h"),
        (h, m) if h < 48 => format!("{h} h {m} min"),
        (h, _) => format!("{} d {} h", h / 24, h % 24),
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
}

/// Tests through the whole report on the constructed cohort of `report::tests`.
#[cfg(test)]
mod report_tests {
    use crate::model::{CtcaeGrade, Record};
    use crate::report::tests::*;
    use crate::report::*;

    #[test]
    fn infusion_reactions_with_time_from_the_start_of_the_dose() {
        let s = Fixture::new(cohort()).summary();
        let irr = &s.total.infusion_reactions;
        assert_eq!(irr.grades.any, Tally { events: 2, subjects: 2 });
        assert_eq!(irr.grades.grade(1), Tally { events: 1, subjects: 1 });
        assert_eq!(irr.grades.grade(2), Tally { events: 1, subjects: 1 });
        assert_eq!(irr.listing.len(), 2);
        let first = &irr.listing[0];
        assert_eq!(first.subject.as_str(), "KS-101");
        assert_eq!(first.grade, Some(CtcaeGrade::new(2).unwrap()));
        assert_eq!(first.onset_study_day, Some(1));
        assert_eq!(first.timing, DoseTiming::AfterDose { dose: 1, minutes: Some(55) });
        let second = &irr.listing[1];
        assert_eq!(second.subject.as_str(), "KS-103");
        assert_eq!(second.timing, DoseTiming::OnsetTimeUnknown, "a date without a time");
        assert_eq!(second.onset_study_day, Some(1));

        let html = Fixture::new(cohort()).html();
        assert!(html.contains("55 min after the start of dose 1"));
        assert!(html.contains("onset time not recorded"));
    }

    #[test]
    fn the_nearest_preceding_dose_is_used() {
        let dose = |start: &str| format!(r#"{{"start":"{start}"}}"#);
        let json = |visit: &str, date: &str, doses: &str, aes: &str| {
            format!(r#"{{"subject":"KS-301","visit":"{visit}","date":"{date}","doses":[{doses}]{aes}}}"#)
        };
        let records = vec![
            Record::from_json(&json("BL", "2019-03-04", &dose("2019-03-04T09:00:00Z"), "")).unwrap(),
            Record::from_json(&json(
                "W4",
                "2019-04-01",
                &dose("2019-04-01T08:00:00Z"),
                &ae(Some("AE-1"), "Allergic reaction", Some(3), Some("2019-04-01T11:20:00Z"), ""),
            ))
            .unwrap(),
            Record::from_json(&json(
                "SCR",
                "2019-02-20",
                "",
                &ae(Some("AE-0"), "Allergic reaction", Some(1), Some("2019-02-20T10:00:00Z"), ""),
            ))
            .unwrap(),
        ];
        let s = Fixture::new(vec![history("KS-301", records)]).summary();
        let listing = &s.total.infusion_reactions.listing;
        assert_eq!(listing.len(), 2);
        assert_eq!(listing[0].ae_id.as_deref(), Some("AE-0"), "ordered by onset");
        assert_eq!(listing[0].timing, DoseTiming::NoPrecedingDose);
        assert_eq!(listing[0].onset_study_day, Some(-12));
        assert_eq!(listing[1].timing, DoseTiming::AfterDose { dose: 2, minutes: Some(200) });
        assert_eq!(listing[1].onset_study_day, Some(29));
    }
}

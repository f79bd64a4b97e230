//! Section "Adverse events": the overview of adverse events (any, related, grade ≥ 3,
//! serious by ICH E2A criterion, leading to discontinuation, fatal), events by worst CTCAE
//! grade, by system organ class and preferred term (counted in `terms.rs`), and the chart
//! of events by grade over time.
//!
//! The tallies and grade tables defined here are shared with the infusion reaction
//! section; what makes an event fatal is shared with deaths and data quality.

use super::{row, safety_groups, split_table};
use crate::model::{AdverseEvent, ClinicalTime, CtcaeGrade, GradeSource, Relatedness, Seriousness};
use crate::report::charts;
use crate::report::document::{Cell, Chart, Row, Section};
use crate::report::terms::TermTally;
use crate::report::{DsmbSummary, GroupSummary};

/// A count of events and of distinct subjects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub events: usize,
    pub subjects: usize,
}

/// Events and subjects by CTCAE grade. Events are counted at their own grade; a subject
/// is counted once, at their worst grade ("not graded" only when none of their events
/// has a grade), so the subject column adds up to `any.subjects`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GradeTable {
    /// Grades 1 to 5, at index 0 to 4.
    pub by_grade: [Tally; 5],
    pub not_graded: Tally,
    pub any: Tally,
    /// Graded events whose grade was mapped from severity (mild / moderate / severe),
    /// not assessed on the CTCAE scale: the table then says "severity (mapped)".
    pub mapped_from_severity: usize,
}

impl GradeTable {
    /// The row of grade `g` (1 to 5); an empty tally for any other number.
    pub fn grade(&self, g: u8) -> Tally {
        match g {
            1..=5 => self.by_grade[usize::from(g) - 1],
            _ => Tally::default(),
        }
    }

    fn slot(&mut self, g: Option<CtcaeGrade>) -> &mut Tally {
        match g {
            Some(g) => {
                let i = usize::from(g.value()).clamp(1, 5) - 1;
                &mut self.by_grade[i]
            }
            None => &mut self.not_graded,
        }
    }

    /// What the grades are: CTCAE grades, severities mapped to grades (when every graded
    /// event was mapped from mild / moderate / severe), or both.
    pub fn scale(&self) -> GradeScale {
        let graded = self.any.events - self.not_graded.events;
        match self.mapped_from_severity {
            0 => GradeScale::Ctcae,
            m if m == graded => GradeScale::Severity,
            _ => GradeScale::Mixed,
        }
    }

    pub(crate) fn from_subjects(per_subject: &[Vec<&AdverseEvent>]) -> Self {
        let mut t = Self::default();
        for events in per_subject.iter().filter(|e| !e.is_empty()) {
            t.any.events += events.len();
            t.any.subjects += 1;
            for ae in events {
                t.slot(ae.grade).events += 1;
                if ae.grade.is_some() && ae.grade_source == GradeSource::Severity {
                    t.mapped_from_severity += 1;
                }
            }
            let worst = events.iter().filter_map(|a| a.grade).max();
            t.slot(worst).subjects += 1;
        }
        t
    }
}

/// What a grade table counts, and so what its headings say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradeScale {
    Ctcae,
    /// Mild / moderate / severe mapped to grades 1 / 2 / 3: not a CTCAE grade.
    Severity,
    Mixed,
}

impl GradeScale {
    /// `CTCAE grade`, `severity (mapped)`, `CTCAE grade or severity (mapped)`.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Ctcae => "CTCAE grade",
            Self::Severity => "severity (mapped)",
            Self::Mixed => "CTCAE grade or severity (mapped)",
        }
    }

    /// The label of the "grade 3 or more" row or column.
    pub fn grade3(self) -> &'static str {
        match self {
            Self::Ctcae => "Grade ≥ 3",
            Self::Severity => "Severe (severity mapped to grade ≥ 3)",
            Self::Mixed => "Grade ≥ 3 (CTCAE, or severe mapped to 3)",
        }
    }
}

/// The ICH E2A seriousness criteria, in the order the report lists them.
pub const ICH_CRITERIA: [Seriousness; 6] = [
    Seriousness::Death,
    Seriousness::LifeThreatening,
    Seriousness::Hospitalization,
    Seriousness::Disability,
    Seriousness::CongenitalAnomaly,
    Seriousness::ImportantMedicalEvent,
];

/// Position in [`ICH_CRITERIA`]; the match fails to compile if a criterion is added.
pub(crate) fn criterion_index(s: Seriousness) -> usize {
    match s {
        Seriousness::Death => 0,
        Seriousness::LifeThreatening => 1,
        Seriousness::Hospitalization => 2,
        Seriousness::Disability => 3,
        Seriousness::CongenitalAnomaly => 4,
        Seriousness::ImportantMedicalEvent => 5,
    }
}

/// The overview of adverse events (FDA ST&F table "overview of AEs"): the current
/// version of each event of the safety population.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdverseEventSummary {
    pub grades: GradeTable,
    /// Relatedness possible, probable or definite.
    pub related: Tally,
    /// CTCAE grade 3 or higher.
    pub grade3_plus: Tally,
    pub serious: Tally,
    /// One tally per criterion of serious events, in [`ICH_CRITERIA`] order. An event meeting two criteria
    /// counts under both, so these rows do not add up to `serious`.
    pub by_criterion: [Tally; 6],
    /// Serious events whose criterion was not recorded.
    pub serious_without_criterion: Tally,
    /// Events that led to permanent discontinuation of study treatment.
    pub discontinued: Tally,
    /// Fatal events: grade 5, the death criterion, or the outcome "fatal".
    pub fatal: Tally,
}

impl AdverseEventSummary {
    pub fn criterion(&self, s: Seriousness) -> Tally {
        self.by_criterion[criterion_index(s)]
    }
}

/// Events meeting `pred`, and the subjects with at least one of them.
fn tally(per_subject: &[Vec<&AdverseEvent>], pred: impl Fn(&AdverseEvent) -> bool) -> Tally {
    per_subject.iter().fold(Tally::default(), |mut t, events| {
        let n = events.iter().filter(|a| pred(a)).count();
        t.events += n;
        t.subjects += usize::from(n > 0);
        t
    })
}

/// Grade 5, the death criterion, or the outcome "fatal" (CDISC AEOUT = FATAL).
pub(crate) fn is_fatal(a: &AdverseEvent) -> bool {
    a.grade.is_some_and(|g| g.value() == 5)
        || a.seriousness.contains(&Seriousness::Death)
        || a.outcome.as_deref().is_some_and(|o| o.trim().eq_ignore_ascii_case("fatal"))
}

pub(crate) fn adverse_event_summary(events: &[Vec<&AdverseEvent>]) -> AdverseEventSummary {
    AdverseEventSummary {
        grades: GradeTable::from_subjects(events),
        related: tally(events, |a| a.related.is_some_and(Relatedness::is_related)),
        grade3_plus: tally(events, |a| a.grade.is_some_and(|g| g.value() >= 3)),
        serious: tally(events, |a| a.serious),
        // Under "Serious" only: the criteria of an event judged non-serious are a query
        // (data quality), not a serious event.
        by_criterion: ICH_CRITERIA.map(|c| tally(events, |a| a.serious && a.seriousness.contains(&c))),
        serious_without_criterion: tally(events, |a| a.serious && a.seriousness.is_empty()),
        discontinued: tally(events, |a| a.discontinued),
        fatal: tally(events, is_fatal),
    }
}

/// Onset order, unknown last.
pub(crate) fn by_onset(events: &mut [&AdverseEvent]) {
    events.sort_by_key(|a| {
        let onset = a.onset.as_ref().map(ClinicalTime::earliest);
        (onset.is_none(), onset)
    });
}

// --- the section in the report ---------------------------------------------------------

/// Subjects n (%) and events for one tally.
fn tally_cells(t: Tally, n: usize) -> Vec<Cell> {
    vec![Cell::count(t.subjects, n), Cell::int(t.events)]
}

pub(crate) fn grade_rows(
    cols: &[&GroupSummary],
    grades: impl Fn(&GroupSummary) -> GradeTable + Copy,
) -> Vec<Row> {
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

/// Section "Adverse events".
pub(crate) fn section(s: &DsmbSummary) -> Section {
    let cols = safety_groups(s);
    let scale = s.total.adverse_events.grades.scale();
    let t = |label: &str, f: fn(&GroupSummary) -> Tally| row(&cols, label, move |g| tally_cells(f(g), g.n()));
    let mut overview = vec![
        t("Any adverse event", |g| g.adverse_events.grades.any).strong(),
        t("Related (possible, probable or definite)", |g| g.adverse_events.related),
        t(scale.grade3(), |g| g.adverse_events.grade3_plus),
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
                &format!("Adverse events by worst {}", scale.noun()),
                &[&capitalise(scale.noun())],
                &["Subjects n (%)", "Events"],
                grade_rows(&cols, |g| g.adverse_events.grades),
            ),
            split_table(
                &cols,
                "ae_by_soc_pt",
                "Adverse events by system organ class and preferred term",
                &["System organ class", "Preferred term"],
                &["Subjects n (%)", &format!("{} n (%)", scale.grade3()), "Events"],
                by_term,
            ),
        ],
        charts: vec![Chart {
            title: "Adverse events by grade over time".to_string(),
            caption: "Adverse events by onset in 4-week buckets of study time (day 1 = first dose), \
                      stacked by grade (CTCAE, or mapped from severity where the data hold only \
                      mild / moderate / severe), with the total on each bar. The bar labelled before \
                      gathers every onset before the first dose; events without an onset date \
                      are not shown."
                .to_string(),
            svg: charts::ae_by_grade(&s.charts),
        }],
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Tests through the whole report on the constructed cohort of `report::tests`.
#[cfg(test)]
mod report_tests {
    use crate::model::{Record, Seriousness, SubjectId};
    use crate::report::tests::*;
    use crate::report::*;

    #[test]
    fn a_grade_table_says_whether_its_grades_are_ctcae_or_mapped_severities() {
        use super::{GradeScale, GradeTable};
        let ae = |json: &str| crate::model::Record::from_json(json).unwrap().adverse_events.remove(0);
        let ctcae = ae(r#"{"subject":"A","adverse_events":[{"term":"Rash","grade":3}]}"#);
        let mapped =
            ae(r#"{"subject":"A","adverse_events":[{"term":"Rash","grade":3,"grade_source":"severity"}]}"#);
        let ungraded = ae(r#"{"subject":"A","adverse_events":[{"term":"Rash"}]}"#);
        let scale = |events: Vec<&crate::model::AdverseEvent>| GradeTable::from_subjects(&[events]).scale();
        assert_eq!(scale(vec![&ctcae, &ungraded]), GradeScale::Ctcae);
        assert_eq!(scale(vec![&mapped, &ungraded]), GradeScale::Severity);
        assert_eq!(scale(vec![&mapped, &ctcae]), GradeScale::Mixed);
        assert_eq!(GradeScale::Severity.noun(), "severity (mapped)");
    }

    #[test]
    fn adverse_events_by_grade_count_each_event_once_at_its_latest_grade() {
        let s = Fixture::new(cohort()).summary();
        let g = s.total.adverse_events.grades;
        assert_eq!(g.any, Tally { events: 5, subjects: 4 });
        assert_eq!(g.grade(1), Tally { events: 2, subjects: 2 });
        assert_eq!(g.grade(2), Tally { events: 1, subjects: 0 }, "KS-101's worst grade is 3");
        assert_eq!(g.grade(3), Tally { events: 1, subjects: 1 });
        assert_eq!(g.grade(4), Tally::default());
        assert_eq!(g.grade(5), Tally::default());
        assert_eq!(g.not_graded, Tally { events: 1, subjects: 1 });
        let subjects: usize = g.by_grade.iter().map(|t| t.subjects).sum::<usize>() + g.not_graded.subjects;
        assert_eq!(subjects, g.any.subjects);

        let ae = s.total.adverse_events;
        assert_eq!(ae.serious, Tally { events: 1, subjects: 1 });
        assert_eq!(ae.criterion(Seriousness::Hospitalization), Tally { events: 1, subjects: 1 });
        assert_eq!(ae.criterion(Seriousness::Death), Tally::default());
        assert_eq!(ae.serious_without_criterion, Tally::default());
    }

    #[test]
    fn an_adverse_event_resent_at_a_higher_grade_counts_once_at_that_grade() {
        let subjects = vec![history(
            "KS-201",
            vec![
                rec("KS-201", "BL", &format!(",{DOSE}")),
                rec("KS-201", "D7", &ae(Some("AE-9"), "Nausea", Some(2), Some("2019-03-10"), "")),
                rec("KS-201", "W4", &ae(Some("AE-9"), "Nausea", Some(3), Some("2019-03-10"), "")),
            ],
        )];
        let f = Fixture::new(subjects);
        let g = f.summary().total.adverse_events.grades;
        assert_eq!(g.any, Tally { events: 1, subjects: 1 });
        assert_eq!(g.grade(2), Tally::default());
        assert_eq!(g.grade(3), Tally { events: 1, subjects: 1 });
    }

    #[test]
    fn subjects_count_once_per_term_at_their_worst_grade() {
        const NERV: &str = "Nervous system disorders";
        let dose = rec_on("A-1", "2019-03-04", r#","doses":[{"start":"2019-03-04"}]"#);
        let with_dose = |id: &str, aes: Vec<String>| {
            let mut records = vec![Record { subject: SubjectId::parse(id).unwrap(), ..dose.clone() }];
            records.extend(aes.iter().map(|a| rec_on(id, "2019-03-20", a)));
            history(id, records)
        };
        let subjects = vec![
            // Two headaches (grades 1 and 3, different verbatim terms) and dizziness grade 2.
            with_dose(
                "A-1",
                vec![
                    coded("head ache", "Headache", NERV, 1, ""),
                    coded("HA", "Headache", NERV, 3, ""),
                    coded("dizzy", "Dizziness", NERV, 2, ""),
                ],
            ),
            // A headache at grade 2, and an uncoded term typed in two letter cases.
            with_dose(
                "A-2",
                vec![
                    coded("headache", "Headache", NERV, 2, ""),
                    r#","adverse_events":[{"term":"Injection site pain","grade":1}]"#.to_string(),
                    r#","adverse_events":[{"term":"injection site PAIN","grade":2}]"#.to_string(),
                ],
            ),
            // Coded by SOC only.
            with_dose(
                "A-3",
                vec![r#","adverse_events":[{"term":"Rash","meddra_soc":"Skin disorders","grade":1}]"#
                    .to_string()],
            ),
        ];
        let f = Fixture::new(subjects);
        let t = f.summary().total.by_term;
        assert_eq!((t.any.subjects, t.any.events), (3, 7));
        assert_eq!(t.any.worst, [1, 1, 1, 0, 0, 0], "A-3 at 1, A-2 at 2, A-1 at 3");

        let socs: Vec<&str> = t.socs.iter().map(|s| s.soc.as_str()).collect();
        assert_eq!(
            socs,
            [NERV, "Skin disorders", "Not coded (reported term)"],
            "by subjects; not coded last"
        );
        let nerv = &t.socs[0];
        assert_eq!((nerv.tally.subjects, nerv.tally.events), (2, 4), "each subject once per SOC");
        assert_eq!(nerv.tally.worst, [0, 1, 1, 0, 0, 0]);
        let terms: Vec<&str> = nerv.terms.iter().map(|t| t.term.as_str()).collect();
        assert_eq!(terms, ["Headache", "Dizziness"]);
        let headache = &nerv.terms[0].tally;
        assert_eq!((headache.subjects, headache.events), (2, 3), "verbatim terms grouped under the PT");
        assert_eq!(headache.worst, [0, 1, 1, 0, 0, 0], "A-1 at grade 3 (not 1), A-2 at grade 2");
        assert_eq!(headache.grade3_plus(), 1);

        let pain = t.find_term("injection site pain").unwrap();
        assert_eq!(pain.term, "Injection site pain", "one stable spelling");
        assert_eq!((pain.tally.subjects, pain.tally.events, pain.tally.worst[1]), (1, 2, 1));
        assert_eq!(t.find_term("rash").unwrap().tally.subjects, 1);

        let csv = f.csv_of("ae_by_soc_pt");
        let header = csv.lines().next().unwrap();
        assert_eq!(
            header,
            "System organ class,Preferred term,group,N,Subjects n,Subjects %,Grade ≥ 3 n,Grade ≥ 3 %,Events"
        );
        assert!(
            csv.contains("\nNervous system disorders,Headache,All subjects,3,2,66.7,1,33.3,3\n"),
            "{csv}"
        );
    }
}

//! Report tests on a cohort whose numbers are known by construction.

use super::*;
use crate::model::{CtcaeGrade, MinimumChange, Record, Seriousness, SubjectHistory, SubjectId};
use chrono::TimeZone;

const ARM: &str = "MSC-HIGH";
const DOSE: &str = r#""doses":[{"start":"2019-03-04T09:10:00+01:00","end":"2019-03-04T09:40:00+01:00","product":"autologous BM-MSC","amount":1.6e6,"unit":"cells/kg"}]"#;

fn date_of(visit: &str) -> &'static str {
    match visit {
        "SCR" => "2019-02-20",
        "BL" | "H2" => "2019-03-04",
        "D7" => "2019-03-11",
        "W4" => "2019-04-01",
        "W12" => "2019-05-27",
        "UNS" => "2019-06-10",
        "W24" => "2019-08-19",
        "W48" => "2020-02-03",
        other => panic!("no date for {other}"),
    }
}

/// One visit record; `extra` is appended to the object (start it with a comma).
fn rec(subject: &str, visit: &str, extra: &str) -> Record {
    let json = format!(
        r#"{{"subject":"{subject}","site":"KS","arm":"{ARM}","visit":"{visit}","date":"{}"{extra}}}"#,
        date_of(visit)
    );
    Record::from_json(&json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn edss(v: f64) -> String {
    format!(r#","scores":[{{"name":"EDSS","value":{v}}}]"#)
}

fn edss_mri(v: f64, new_t2: u32) -> String {
    format!(r#","scores":[{{"name":"EDSS","value":{v}}}],"mri":{{"t2_new_or_enlarging":{new_t2}}}"#)
}

fn ae(id: Option<&str>, term: &str, grade: Option<u8>, onset: Option<&str>, extra: &str) -> String {
    let mut fields = vec![format!(r#""term":"{term}""#)];
    if let Some(id) = id {
        fields.push(format!(r#""id":"{id}""#));
    }
    if let Some(g) = grade {
        fields.push(format!(r#""grade":{g}"#));
    }
    if let Some(o) = onset {
        fields.push(format!(r#""onset":"{o}""#));
    }
    format!(r#","adverse_events":[{{{}{extra}}}]"#, fields.join(","))
}

fn history(subject: &str, records: Vec<Record>) -> SubjectHistory {
    SubjectHistory::new(SubjectId::parse(subject).unwrap(), records)
}

/// Seven subjects, six dosed, modelled on the seed study's abstract: EDSS stable in 6/6
/// at W12 and worse in 3/5 at W48 (variant A); new T2 lesions in 1/6 at W12, 3/5 at W48.
fn cohort() -> Vec<SubjectHistory> {
    /// EDSS and new T2 count at a follow-up visit, if the subject came.
    type FollowUp = Option<(f64, u32)>;
    // (subject, BL EDSS, W12, W48)
    let plan: [(&str, f64, FollowUp, FollowUp); 6] = [
        ("KS-101", 4.0, Some((4.0, 0)), Some((5.0, 1))), // +1.0 from 4.0: worse
        ("KS-102", 5.5, Some((5.5, 0)), Some((6.0, 2))), // +0.5 from 5.5: worse (A), not (B)
        ("KS-103", 6.5, Some((6.5, 1)), Some((7.0, 1))), // +0.5 from 6.5: worse
        ("KS-104", 4.0, Some((4.0, 0)), Some((4.5, 0))), // +0.5 from 4.0: NOT worse
        ("KS-105", 3.0, Some((3.0, 0)), Some((2.0, 0))), // -1.0 from 3.0: better
        ("KS-106", 6.0, Some((6.0, 0)), None),           // lost after W12
    ];
    let mut out = Vec::new();
    for (id, bl, w12, w48) in plan {
        let mut records = vec![rec(id, "BL", &format!("{},{DOSE}", edss(bl)))];
        for v in ["H2", "D7", "W4"] {
            records.push(rec(id, v, ""));
        }
        if let Some((score, t2)) = w12 {
            records.push(rec(id, "W12", &edss_mri(score, t2)));
        }
        if w48.is_some() {
            records.push(rec(id, "W24", ""));
        }
        if let Some((score, t2)) = w48 {
            records.push(rec(id, "W48", &edss_mri(score, t2)));
        }
        out.push(history(id, records));
    }
    // Adverse events, as separate records at the visit they were reported.
    let add = |out: &mut Vec<SubjectHistory>, i: usize, r: Record| out[i].records.push(r);
    // KS-101: an infusion reaction 55 min after the start of the infusion ...
    add(
        &mut out,
        0,
        rec(
            "KS-101",
            "H2",
            &ae(
                Some("AE-2"),
                "Infusion related reaction",
                Some(2),
                Some("2019-03-04T10:05:00+01:00"),
                r#","related":"probable""#,
            ),
        ),
    );
    // ... and a headache reported at grade 2, re-sent at grade 3 (serious) with the same id.
    add(&mut out, 0, rec("KS-101", "D7", &ae(Some("AE-1"), "Headache", Some(2), Some("2019-03-10"), "")));
    add(
        &mut out,
        0,
        rec(
            "KS-101",
            "W4",
            &ae(
                Some("AE-1"),
                "Headache",
                Some(3),
                Some("2019-03-10"),
                r#","serious":true,"seriousness":["hospitalization"]"#,
            ),
        ),
    );
    // KS-103: an infusion reaction with a date but no time, term in other case.
    add(
        &mut out,
        2,
        rec("KS-103", "H2", &ae(Some("AE-3"), "infusion related REACTION", Some(1), Some("2019-03-04"), "")),
    );
    // KS-105: fatigue without id or onset.
    add(&mut out, 4, rec("KS-105", "D7", &ae(None, "Fatigue", Some(1), None, "")));
    // KS-106: an ungraded infection with a partial onset date.
    add(
        &mut out,
        5,
        rec("KS-106", "W12", &ae(Some("AE-6"), "Urinary tract infection", None, Some("2019-05"), "")),
    );
    // KS-102 had an unscheduled visit.
    add(&mut out, 1, rec("KS-102", "UNS", ""));
    // KS-107: screened and baselined, never dosed.
    out.push(history("KS-107", vec![rec("KS-107", "SCR", ""), rec("KS-107", "BL", &edss(3.5))]));
    out
}

fn visit_order() -> Vec<String> {
    ["BL", "H2", "D7", "W4", "W12", "W24", "W48"].map(String::from).to_vec()
}

fn irr_terms() -> Vec<String> {
    vec!["Infusion related reaction".to_string(), "Allergic reaction".to_string()]
}

struct Fixture {
    subjects: Vec<SubjectHistory>,
    rule: MinimumChange,
    visits: Vec<String>,
    terms: Vec<String>,
    title: String,
}

impl Fixture {
    fn new(subjects: Vec<SubjectHistory>) -> Self {
        Self {
            subjects,
            rule: MinimumChange::variant_a(),
            visits: visit_order(),
            terms: irr_terms(),
            title: "Autologous MSC in progressive MS (phase I)".to_string(),
        }
    }

    fn input(&self) -> DsmbInput<'_> {
        DsmbInput {
            study_title: &self.title,
            as_of: chrono::Utc.with_ymd_and_hms(2020, 3, 1, 0, 0, 0).unwrap(),
            subjects: &self.subjects,
            edss_change: &self.rule,
            visit_order: &self.visits,
            infusion_reaction_terms: &self.terms,
            quarantined_records: 2,
        }
    }

    fn summary(&self) -> DsmbSummary {
        summarize(&self.input())
    }

    fn html(&self) -> String {
        let input = self.input();
        try_render_html(&input, &summarize(&input)).expect("the template renders")
    }
}

#[test]
fn disposition_counts_enrolled_dosed_and_each_visit_in_protocol_order() {
    let s = Fixture::new(cohort()).summary();
    assert_eq!(s.disposition.enrolled, 7);
    assert_eq!(s.disposition.dosed, 6);
    assert_eq!(s.disposition.sentence(), "Enrolled: 7. Dosed: 6.");
    // Protocol visits first, then the others by first date (SCR before UNS).
    assert_eq!(s.visits, ["BL", "H2", "D7", "W4", "W12", "W24", "W48", "SCR", "UNS"]);
    let completed: Vec<usize> = s.disposition.visits.iter().map(|v| v.subjects).collect();
    assert_eq!(completed, [7, 6, 6, 6, 6, 5, 5, 1, 1]);
    assert_eq!(s.disposition.completed("W48"), Some(5));
}

#[test]
fn edss_change_from_baseline_by_construction() {
    let s = Fixture::new(cohort()).summary();
    assert_eq!(s.edss.baseline_subjects, 7);
    assert!((s.edss.baseline_mean.unwrap() - 32.5 / 7.0).abs() < 1e-9);
    let visits: Vec<&str> = s.edss.by_visit.iter().map(|v| v.visit.as_str()).collect();
    assert_eq!(visits, ["W12", "W48"], "baseline-only visits have no row");

    let w12 = s.edss.at("W12").unwrap();
    assert_eq!((w12.assessed, w12.worse, w12.stable, w12.better), (6, 0, 6, 0));
    assert_eq!(w12.mean_change, 0.0);

    let w48 = s.edss.at("W48").unwrap();
    assert_eq!(w48.assessed, 5);
    assert_eq!(w48.worse, 3, "KS-101, KS-102, KS-103");
    assert_eq!(w48.stable, 1, "KS-104: +0.5 from 4.0 is not worse");
    assert_eq!(w48.better, 1, "KS-105");
    assert!((w48.mean_change - 0.3).abs() < 1e-9);
    assert_eq!(w48.sentence(), "EDSS worse than baseline at W48: 3 of 5");
}

#[test]
fn the_edss_rule_of_the_trial_decides_worse() {
    let mut f = Fixture::new(cohort());
    f.rule = MinimumChange::variant_b();
    let w48 = f.summary().edss.at("W48").cloned().unwrap();
    // Under variant B, +0.5 from 5.5 (KS-102) is no longer worse.
    assert_eq!((w48.worse, w48.stable, w48.better), (2, 2, 1));
    assert!(f.html().contains("EDSS worse than baseline at W48: 2 of 5"));
}

#[test]
fn mri_new_t2_by_construction() {
    let s = Fixture::new(cohort()).summary();
    let rows: Vec<(&str, usize, usize, u64, usize)> = s
        .mri
        .iter()
        .map(|m| (m.visit.as_str(), m.scans, m.subjects_scanned, m.total_new_t2, m.subjects_with_new_t2))
        .collect();
    assert_eq!(rows, [("W12", 6, 6, 1, 1), ("W48", 5, 5, 4, 3)]);
    assert_eq!(s.mri[1].sentence(), "New or enlarging T2 lesions at W48: 3 of 5");
    assert_eq!(s.mri[1].against_previous, 5);
}

#[test]
fn the_html_states_the_findings_as_sentences() {
    let html = Fixture::new(cohort()).html();
    for sentence in [
        "Enrolled: 7. Dosed: 6.",
        "EDSS worse than baseline at W12: 0 of 6",
        "EDSS worse than baseline at W48: 3 of 5",
        "New or enlarging T2 lesions at W12: 1 of 6",
        "New or enlarging T2 lesions at W48: 3 of 5",
        "Quarantined records: 2.",
    ] {
        assert!(html.contains(sentence), "missing `{sentence}` in\n{html}");
    }
    assert!(!html.contains("EDSS worse than baseline at BL"), "no row for the baseline visit");
    assert!(html.contains("OPEN REPORT"));
    assert!(html.contains("Data cut-off: <strong>2020-03-01 00:00 UTC</strong>"));
    assert!(html.contains("Subjects enrolled: <strong>7</strong>"));
    assert!(html.contains("<h2>4. EDSS change from baseline</h2>"));
}

#[test]
fn adverse_events_by_grade_count_each_event_once_at_its_latest_grade() {
    let s = Fixture::new(cohort()).summary();
    let g = s.adverse_events.grades;
    assert_eq!(g.any, Tally { events: 5, subjects: 4 });
    assert_eq!(g.grade(1), Tally { events: 2, subjects: 2 });
    assert_eq!(g.grade(2), Tally { events: 1, subjects: 0 }, "KS-101's worst grade is 3");
    assert_eq!(g.grade(3), Tally { events: 1, subjects: 1 });
    assert_eq!(g.grade(4), Tally::default());
    assert_eq!(g.grade(5), Tally::default());
    assert_eq!(g.not_graded, Tally { events: 1, subjects: 1 });
    let subjects: usize = g.by_grade.iter().map(|t| t.subjects).sum::<usize>() + g.not_graded.subjects;
    assert_eq!(subjects, g.any.subjects);

    let ae = s.adverse_events;
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
            rec("KS-201", "D7", &ae(Some("AE-9"), "Nausea", Some(2), Some("2019-03-10"), "")),
            rec("KS-201", "W4", &ae(Some("AE-9"), "Nausea", Some(3), Some("2019-03-10"), "")),
        ],
    )];
    let f = Fixture::new(subjects);
    let g = f.summary().adverse_events.grades;
    assert_eq!(g.any, Tally { events: 1, subjects: 1 });
    assert_eq!(g.grade(2), Tally::default());
    assert_eq!(g.grade(3), Tally { events: 1, subjects: 1 });
}

#[test]
fn infusion_reactions_with_time_from_the_start_of_the_dose() {
    let s = Fixture::new(cohort()).summary();
    let irr = &s.infusion_reactions;
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
    let listing = &s.infusion_reactions.listing;
    assert_eq!(listing.len(), 2);
    assert_eq!(listing[0].ae_id.as_deref(), Some("AE-0"), "ordered by onset");
    assert_eq!(listing[0].timing, DoseTiming::NoPrecedingDose);
    assert_eq!(listing[0].onset_study_day, Some(-12));
    assert_eq!(listing[1].timing, DoseTiming::AfterDose { dose: 2, minutes: Some(200) });
    assert_eq!(listing[1].onset_study_day, Some(29));
}

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
    assert!(
        render_html(&input, &s).contains("Records dated after the data cut-off (still counted above): 5.")
    );
}

#[test]
fn the_arm_never_appears() {
    let f = Fixture::new(cohort());
    assert!(f.subjects.iter().all(|h| h.records.iter().all(|r| r.arm.as_deref() == Some(ARM))));
    let html = f.html();
    assert!(!html.contains(ARM), "the open report shows the arm");
    assert!(!format!("{:?}", f.summary()).contains(ARM));
}

#[test]
fn data_text_is_escaped() {
    let evil = "<script>alert('x')</script>";
    let mut f = Fixture::new(vec![history(
        "KS-401",
        vec![rec("KS-401", "H2", &ae(Some("AE-<1>"), evil, Some(2), Some("2019-03-04T10:00:00Z"), ""))],
    )]);
    f.terms = vec![evil.to_string()];
    f.title = "Cells & <b>MS</b>".to_string();
    f.visits = vec!["<i>BL</i>".to_string()];
    let html = f.html();
    assert!(!html.contains("<script"), "unescaped script in\n{html}");
    assert!(html.contains("&lt;script&gt;alert("));
    assert!(!html.contains("<b>MS"));
    assert!(html.contains("Cells &amp; &lt;b&gt;MS"));
    assert!(!html.contains("<i>BL"));
    assert!(html.contains("AE-&lt;1&gt;"));
}

#[test]
fn the_page_is_self_contained_and_printable() {
    let html = Fixture::new(cohort()).html();
    assert!(html.starts_with("<!DOCTYPE html>"));
    for banned in ["<script", "http://", "https://", "src=", "<link", "@import", "url("] {
        assert!(!html.contains(banned), "`{banned}` in the page");
    }
    assert!(html.contains("@media print"));
    assert!(html.contains("<style>"));
}

#[test]
fn rendering_is_deterministic_whatever_the_input_order() {
    let f = Fixture::new(cohort());
    let once = f.html();
    assert_eq!(once, f.html());
    let mut reversed = Fixture::new(cohort());
    reversed.subjects.reverse();
    assert_eq!(once, reversed.html());
    assert_eq!(f.summary(), reversed.summary());
}

#[test]
fn histories_sharing_a_subject_id_are_counted_once() {
    let mut subjects = cohort();
    let extra = history("KS-101", vec![rec("KS-101", "W24", "")]);
    subjects.push(extra);
    let s = Fixture::new(subjects).summary();
    assert_eq!(s.disposition.enrolled, 7);
    assert_eq!(s.disposition.completed("W24"), Some(5));
}

#[test]
fn an_empty_cohort_renders() {
    let f = Fixture::new(Vec::new());
    let s = f.summary();
    assert_eq!(s.disposition.sentence(), "Enrolled: 0. Dosed: 0.");
    assert!(s.edss.by_visit.is_empty() && s.mri.is_empty());
    let html = f.html();
    assert!(html.contains("No infusion reactions recorded."));
    assert!(html.contains("No post-baseline EDSS assessments recorded."));
    assert!(html.contains("No MRI scans recorded."));
}

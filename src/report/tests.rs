//! Report tests on a cohort whose numbers are known by construction.

use super::*;
use crate::model::{CtcaeGrade, MinimumChange, Record, Seriousness, SubjectHistory, SubjectId};
use crate::store::AlertRow;
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
    alerts: Vec<AlertRow>,
    stopping: Vec<StoppingRuleStatus>,
    overdue: Vec<OverdueVisit>,
    closed: bool,
    as_of: chrono::DateTime<chrono::Utc>,
}

impl Fixture {
    fn new(subjects: Vec<SubjectHistory>) -> Self {
        Self {
            subjects,
            rule: MinimumChange::variant_a(),
            visits: visit_order(),
            terms: irr_terms(),
            title: "Autologous MSC in progressive MS (phase I)".to_string(),
            alerts: Vec::new(),
            stopping: Vec::new(),
            overdue: Vec::new(),
            closed: false,
            as_of: chrono::Utc.with_ymd_and_hms(2020, 3, 1, 0, 0, 0).unwrap(),
        }
    }

    fn input(&self) -> DsmbInput<'_> {
        DsmbInput {
            study_title: &self.title,
            as_of: self.as_of,
            subjects: &self.subjects,
            edss_change: &self.rule,
            visit_order: &self.visits,
            infusion_reaction_terms: &self.terms,
            quarantined_records: 2,
            alerts: &self.alerts,
            stopping_rules: &self.stopping,
            snapshot_hash: HASH,
            closed: self.closed,
            overdue_visits: &self.overdue,
        }
    }

    fn summary(&self) -> DsmbSummary {
        summarize(&self.input())
    }

    fn html(&self) -> String {
        let input = self.input();
        try_render_html(&input, &summarize(&input)).expect("the template renders")
    }

    fn csv(&self) -> Vec<(String, String)> {
        let input = self.input();
        render_csv(&input, &summarize(&input))
    }

    /// The CSV of the table whose file name ends in `{id}.csv`.
    fn csv_of(&self, id: &str) -> String {
        let files = self.csv();
        files
            .into_iter()
            .find(|(name, _)| name.ends_with(&format!("_{id}.csv")))
            .map(|(_, text)| text)
            .unwrap_or_else(|| panic!("no CSV for {id}"))
    }
}

const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[test]
fn disposition_counts_enrolled_dosed_and_each_visit_in_protocol_order() {
    let s = Fixture::new(cohort()).summary();
    assert_eq!(s.total.disposition.enrolled, 7);
    assert_eq!(s.total.disposition.dosed, 6);
    assert_eq!(s.total.disposition.sentence(), "Enrolled: 7. Dosed: 6.");
    // Protocol visits first, then the others by first date (SCR before UNS).
    assert_eq!(s.visits, ["BL", "H2", "D7", "W4", "W12", "W24", "W48", "SCR", "UNS"]);
    let completed: Vec<usize> = s.total.disposition.visits.iter().map(|v| v.subjects).collect();
    assert_eq!(completed, [7, 6, 6, 6, 6, 5, 5, 1, 1]);
    assert_eq!(s.total.disposition.completed("W48"), Some(5));
}

#[test]
fn edss_change_from_baseline_by_construction() {
    let s = Fixture::new(cohort()).summary();
    assert_eq!(s.total.edss.baseline_subjects, 7);
    assert!((s.total.edss.baseline_mean.unwrap() - 32.5 / 7.0).abs() < 1e-9);
    let visits: Vec<&str> = s.total.edss.by_visit.iter().map(|v| v.visit.as_str()).collect();
    assert_eq!(visits, ["W12", "W48"], "baseline-only visits have no row");

    let w12 = s.total.edss.at("W12").unwrap();
    assert_eq!((w12.assessed, w12.worse, w12.stable, w12.better), (6, 0, 6, 0));
    assert_eq!(w12.mean_change, 0.0);

    let w48 = s.total.edss.at("W48").unwrap();
    assert_eq!(w48.assessed, 5);
    assert_eq!(w48.worse, 3, "KS-101, KS-102, KS-103");
    assert_eq!(w48.stable, 1, "KS-104: +0.5 from 4.0 is not worse");
    assert_eq!(w48.better, 1, "KS-105");
    assert!((w48.mean_change - 0.3).abs() < 1e-9);
    assert_eq!(w48.sentence(), "EDSS worse than baseline at W48: 3 of 5 (stable 1, better 1)");
}

#[test]
fn the_edss_rule_of_the_trial_decides_worse() {
    let mut f = Fixture::new(cohort());
    f.rule = MinimumChange::variant_b();
    let w48 = f.summary().total.edss.at("W48").cloned().unwrap();
    // Under variant B, +0.5 from 5.5 (KS-102) is no longer worse.
    assert_eq!((w48.worse, w48.stable, w48.better), (2, 2, 1));
    assert!(f.html().contains("EDSS worse than baseline at W48: 2 of 5"));
}

#[test]
fn mri_new_t2_by_construction() {
    let s = Fixture::new(cohort()).summary();
    let rows: Vec<(&str, usize, usize, u64, usize)> = s
        .total
        .mri
        .iter()
        .map(|m| (m.visit.as_str(), m.scans, m.subjects_scanned, m.total_new_t2, m.subjects_with_new_t2))
        .collect();
    assert_eq!(rows, [("W12", 6, 6, 1, 1), ("W48", 5, 5, 4, 3)]);
    assert_eq!(s.total.mri[1].sentence(), "New or enlarging T2 lesions at W48: 3 of 5");
    assert_eq!(s.total.mri[1].against_previous, 5);
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
    assert!(!html.contains("CLOSED REPORT"));
    assert!(html.contains("Data cut-off: <strong>2020-03-01 00:00 UTC</strong>"));
    assert!(html.contains(&format!("Data snapshot SHA-256: <span class=\"hash\">{HASH}</span>")));
    assert!(html.contains("<h2>8. EDSS change from baseline</h2>"));
    assert!(html.contains("EDSS worse than baseline at W48: 3 of 5 (stable 1, better 1)"));
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

#[test]
fn the_arm_never_appears() {
    let mut f = Fixture::new(two_arms(cohort()));
    f.alerts = vec![alert(1, "KS-101", "warning", "open", (2019, 3, 11))];
    assert!(f.subjects.iter().all(|h| h.records.iter().all(|r| r.arm.is_some())));
    let html = f.html();
    for arm in [ARM, LOW] {
        assert!(!html.contains(arm), "the open report shows the arm {arm}");
        assert!(!format!("{:?}", f.summary()).contains(arm));
        assert!(f.csv().iter().all(|(_, text)| !text.contains(arm)), "an open CSV shows {arm}");
    }
    assert!(!html.contains(NO_ARM) && !html.contains(">Arm<"));
}

#[test]
fn data_text_is_escaped() {
    let evil = "<script>alert('x')</script>";
    let mut f = Fixture::new(vec![history(
        "KS-401",
        vec![
            rec("KS-401", "BL", &format!(",{DOSE}")),
            rec("KS-401", "H2", &ae(Some("AE-<1>"), evil, Some(2), Some("2019-03-04T10:00:00Z"), "")),
        ],
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
    assert_eq!(s.total.disposition.enrolled, 7);
    assert_eq!(s.total.disposition.completed("W24"), Some(5));
}

#[test]
fn an_empty_cohort_renders() {
    let f = Fixture::new(Vec::new());
    let s = f.summary();
    assert_eq!(s.total.disposition.sentence(), "Enrolled: 0. Dosed: 0.");
    assert!(s.total.edss.by_visit.is_empty() && s.total.mri.is_empty());
    let html = f.html();
    assert!(html.contains("No infusion reactions recorded."));
    assert!(html.contains("No post-baseline EDSS assessments recorded."));
    assert!(html.contains("No MRI scans recorded."));
}

// --- helpers for the tests below --------------------------------------------------------

const LOW: &str = "MSC-LOW";

/// KS-104, KS-105, KS-106 and KS-107 moved to the low-dose arm; the others stay high.
fn two_arms(mut subjects: Vec<SubjectHistory>) -> Vec<SubjectHistory> {
    for h in &mut subjects {
        if ["KS-104", "KS-105", "KS-106", "KS-107"].contains(&h.subject.as_str()) {
            for r in &mut h.records {
                r.arm = Some(LOW.to_string());
            }
        }
    }
    subjects
}

fn alert(id: i64, subject: &str, severity: &str, status: &str, (y, m, d): (i32, u32, u32)) -> AlertRow {
    AlertRow {
        id,
        rule_id: "rule-x".to_string(),
        rule_version: "1".to_string(),
        subject: subject.to_string(),
        site: Some("KS".to_string()),
        episode: format!("e{id}"),
        level: 1,
        severity: crate::alerts::lifecycle::parse_severity(severity).unwrap(),
        title: format!("Alert {id}"),
        summary: String::new(),
        evidence: serde_json::Value::Null,
        status: status.parse().unwrap(),
        raised_at: chrono::Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap(),
        escalation_step: 0,
        next_escalation_at: None,
    }
}

/// A record at an arbitrary date (`extra` starts with a comma).
fn rec_on(subject: &str, date: &str, extra: &str) -> Record {
    let json = format!(r#"{{"subject":"{subject}","arm":"{ARM}","date":"{date}"{extra}}}"#);
    Record::from_json(&json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// A coded AE (`extra` is appended inside the object).
fn coded(term: &str, pt: &str, soc: &str, grade: u8, extra: &str) -> String {
    format!(
        r#","adverse_events":[{{"term":"{term}","meddra_pt":"{pt}","meddra_soc":"{soc}","grade":{grade},"onset":"2019-03-20"{extra}}}]"#
    )
}

fn lab(test: &str, value: f64, high: f64) -> String {
    format!(r#","labs":[{{"test":"{test}","value":{value},"high":{high}}}]"#)
}

/// The CSV line whose first field is `label`, as fields (only the first may be quoted).
fn csv_line<'a>(csv: &'a str, label: &'a str) -> Vec<&'a str> {
    let quoted = format!("\"{label}\",");
    let line = csv
        .lines()
        .find(|l| l.split(',').next() == Some(label) || l.starts_with(&quoted))
        .unwrap_or_else(|| panic!("no line `{label}` in\n{csv}"));
    let rest = line
        .strip_prefix(quoted.as_str())
        .or_else(|| line.strip_prefix(label).and_then(|r| r.strip_prefix(',')));
    std::iter::once(label).chain(rest.unwrap_or_default().split(',')).collect()
}

// --- counts and percentages ---------------------------------------------------------------

#[test]
fn percentages_are_of_the_dosed_subjects() {
    let f = Fixture::new(cohort());
    let csv = f.csv_of("key_figures");
    assert!(csv.starts_with("Measure,group,N,n,%\n"), "{csv}");
    assert_eq!(
        csv_line(&csv, "Dosed (safety population, N)"),
        ["Dosed (safety population, N)", "All subjects", "6", "6", ""]
    );
    // 4 of the 6 dosed subjects had an adverse event: 66.7 %.
    assert_eq!(csv_line(&csv, "Subjects with any adverse event")[3..], ["4", "66.7"]);
    assert_eq!(csv_line(&csv, "… with a serious adverse event")[3..], ["1", "16.7"]);
    let html = f.html();
    assert!(
        html.contains("<td>Subjects with any adverse event</td><td class=\"num\">4 (66.7%)</td>"),
        "{html}"
    );
    assert!(html.contains("All subjects (N=6)"));
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
        vec![rec("KS-108", "SCR", r#","disposition":{"status":"screen_failure","reason":"EDSS too high"}"#)],
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

// --- adverse events by term -----------------------------------------------------------------

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
            vec![r#","adverse_events":[{"term":"Rash","meddra_soc":"Skin disorders","grade":1}]"#.to_string()],
        ),
    ];
    let f = Fixture::new(subjects);
    let t = f.summary().total.by_term;
    assert_eq!((t.any.subjects, t.any.events), (3, 7));
    assert_eq!(t.any.worst, [1, 1, 1, 0, 0, 0], "A-3 at 1, A-2 at 2, A-1 at 3");

    let socs: Vec<&str> = t.socs.iter().map(|s| s.soc.as_str()).collect();
    assert_eq!(socs, [NERV, "Skin disorders", "Not coded (reported term)"], "by subjects; not coded last");
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
    assert!(csv.contains("\nNervous system disorders,Headache,All subjects,3,2,66.7,1,33.3,3\n"), "{csv}");
}

// --- serious events and deaths --------------------------------------------------------------

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

// --- liver tests and eDISH -----------------------------------------------------------------

#[test]
fn edish_quadrants_at_the_exact_boundaries() {
    assert_eq!(Quadrant::of(3.0, 2.0), Quadrant::PotentialHysLaw);
    assert_eq!(Quadrant::of(2.999, 2.0), Quadrant::Cholestasis);
    assert_eq!(Quadrant::of(3.0, 1.999), Quadrant::TemplesCorollary);
    assert_eq!(Quadrant::of(2.999, 1.999), Quadrant::Normal);

    let dose = r#","doses":[{"start":"2019-03-04"}]"#;
    let subject = |id: &str, labs: &[String]| {
        let mut records = vec![rec_on(id, "2019-03-04", dose)];
        records
            .extend(labs.iter().enumerate().map(|(i, l)| rec_on(id, &format!("2019-03-{:02}", 10 + i), l)));
        history(id, records)
    };
    let subjects = vec![
        // Exactly 3×ULN (ALT 120 / 40) and exactly 2×ULN (bilirubin 42 / 21): Hy's law,
        // but neither is "> 3×" or "> 2×".
        subject("H-1", &[lab("ALT", 120.0, 40.0), lab("BILI", 42.0, 21.0)]),
        // AST (as SGOT) gives the peak; bilirubin as lowercase tbili just under 2×.
        subject("H-2", &[lab("ALT", 50.0, 40.0), lab("SGOT", 150.0, 36.0), lab("tbili", 41.9, 21.0)]),
        // Bilirubin 2× with normal transaminases, each against its own sample's ULN.
        subject("H-3", &[lab("SGPT", 119.0, 40.0), lab("BILI", 50.0, 25.0), lab("BILI", 30.0, 21.0)]),
        subject("H-4", &[lab("ALT", 20.0, 40.0), lab("BILI", 10.0, 21.0)]),
        // Only ALT: tested, not plotted. A result without ULN is not evaluable.
        subject("H-5", &[lab("ALT", 200.0, 40.0), r#","labs":[{"test":"AST","value":500}]"#.to_string()]),
    ];
    let f = Fixture::new(subjects);
    let s = f.summary();
    let labs = &s.total.labs;
    assert_eq!(labs.subjects_tested, 5);
    assert_eq!(labs.alt_above_3, 1, "only H-5 (5×); H-1 is exactly 3×");
    assert_eq!(labs.ast_above_3, 1, "H-2 (4.2×)");
    assert_eq!(labs.alt_or_ast_above_3, 2);
    assert_eq!(labs.bili_above_2, 0, "2× exactly is not above 2×");
    let q = labs.quadrants;
    assert_eq!((q.potential_hys_law, q.temples_corollary, q.cholestasis, q.normal), (1, 1, 1, 1));
    let by_subject: Vec<(&str, Quadrant)> =
        labs.points.iter().map(|p| (p.subject.as_str(), p.quadrant)).collect();
    assert_eq!(
        by_subject,
        [
            ("H-1", Quadrant::PotentialHysLaw),
            ("H-2", Quadrant::TemplesCorollary),
            ("H-3", Quadrant::Cholestasis),
            ("H-4", Quadrant::Normal)
        ]
    );
    assert!((labs.points[1].alt_ast_x_uln - 150.0 / 36.0).abs() < 1e-12);
    assert_eq!(s.data_quality.liver_results_without_uln, 1);
    let csv = f.csv_of("edish_quadrants");
    assert!(
        csv.contains("\"Potential Hy's law (ALT/AST ≥ 3×ULN, bilirubin ≥ 2×ULN)\",All subjects,5,1,20.0"),
        "{csv}"
    );
    let csv = f.csv_of("edish_listing");
    assert_eq!(csv.lines().nth(1), Some("H-1,3.00,2.00,Potential Hy's law"));
}

// --- the data cut ---------------------------------------------------------------------------

#[test]
fn records_after_the_cutoff_are_left_out() {
    let mut f = Fixture::new(cohort());
    // Between D7 (2019-03-11) and W4 (2019-04-01): KS-101's headache is still grade 2.
    f.as_of = chrono::Utc.with_ymd_and_hms(2019, 3, 20, 0, 0, 0).unwrap();
    f.alerts = vec![
        alert(1, "KS-101", "warning", "open", (2019, 3, 11)),
        alert(2, "KS-101", "critical", "open", (2019, 4, 1)),
    ];
    // A record without any time is kept.
    f.subjects[6].records.push(Record::from_json(r#"{"subject":"KS-107","site":"KS"}"#).unwrap());
    let s = f.summary();
    let g = s.total.adverse_events.grades;
    assert_eq!(g.grade(2), Tally { events: 2, subjects: 1 }, "the grade 3 version came after the cut");
    assert_eq!(g.grade(3), Tally::default());
    assert_eq!(s.total.adverse_events.serious, Tally::default());
    assert_eq!(s.total.disposition.completed("W12"), Some(0));
    assert!(s.total.edss.by_visit.is_empty());
    assert_eq!(s.alerts.total, 1);
    assert_eq!(s.data_quality.alerts_after_cutoff, 1);
    // W4 ×6, W12 ×6, W24 ×5, W48 ×5, the W4 headache, KS-106's W12 infection, KS-102's UNS.
    assert_eq!(s.data_quality.records_after_cutoff, 6 + 6 + 5 + 5 + 3);
    assert_eq!(s.total.disposition.screened, 7);
}

// --- closed and open reports --------------------------------------------------------------

#[test]
fn the_closed_report_splits_every_table_by_arm() {
    let mut f = Fixture::new(two_arms(cohort()));
    f.closed = true;
    let s = f.summary();
    let labels: Vec<&str> = s.groups().iter().map(|g| g.label.as_str()).collect();
    assert_eq!(labels, [ARM, LOW, "Total"]);
    let (high, low) = (s.arm(ARM).unwrap(), s.arm(LOW).unwrap());
    assert_eq!((high.disposition.screened, high.n()), (3, 3));
    assert_eq!((low.disposition.screened, low.n()), (4, 3), "KS-107 was never dosed");
    assert_eq!(high.adverse_events.grades.any, Tally { events: 3, subjects: 2 });
    assert_eq!(low.adverse_events.grades.any, Tally { events: 2, subjects: 2 });
    assert_eq!(s.total.adverse_events.grades.any, Tally { events: 5, subjects: 4 });
    assert_eq!(high.edss.at("W48").map(|e| e.worse), Some(3));
    assert_eq!(low.edss.at("W48").map(|e| (e.worse, e.stable, e.better)), Some((0, 1, 1)));
    assert_eq!(s.total.infusion_reactions.listing[0].arm.as_deref(), Some(ARM));

    let html = f.html();
    assert!(html.contains("CLOSED REPORT — DSMB ONLY"));
    assert!(!html.contains("OPEN REPORT"));
    assert!(html.contains("<th colspan=\"2\" class=\"grp\">MSC-HIGH (N=3)</th><th colspan=\"2\" class=\"grp\">MSC-LOW (N=3)</th><th colspan=\"2\" class=\"grp\">Total (N=6)</th>"), "{html}");
    assert!(html.contains("MSC-HIGH: EDSS worse than baseline at W48: 3 of 3"));
    // Every split table has all three groups; every listing names the arm.
    let csv = f.csv_of("ae_by_grade");
    for group in [ARM, LOW, "Total"] {
        assert!(csv.lines().any(|l| l.starts_with(&format!("Any grade,{group},"))), "{csv}");
    }
    assert_eq!(csv_line(&csv, "Any grade").len(), 6);
    let csv = f.csv_of("infusion_listing");
    assert!(csv.starts_with("Arm,Subject,"), "{csv}");
    assert!(csv.contains("\nMSC-HIGH,KS-101,AE-2,"), "{csv}");
    let csv = f.csv_of("edss_by_visit");
    assert!(csv.contains("\nMSC-LOW,W48,2,-0.25,0,0.0,1,50.0,1,50.0\n"), "{csv}");
    for name in [
        "key_figures",
        "disposition",
        "visits_completed",
        "exposure",
        "ae_overview",
        "ae_by_soc_pt",
        "infusion_by_grade",
        "liver_abnormalities",
        "edish_quadrants",
    ] {
        let csv = f.csv_of(name);
        assert!(csv.contains(&format!(",{LOW},")), "{name} is not split:\n{csv}");
    }
}

#[test]
fn subjects_without_an_arm_are_their_own_group_in_the_closed_report() {
    let mut subjects = cohort();
    for r in &mut subjects[0].records {
        r.arm = None;
    }
    let mut f = Fixture::new(subjects);
    f.closed = true;
    let s = f.summary();
    assert_eq!(s.arm(NO_ARM).map(|g| g.n()), Some(1));
    assert_eq!(s.data_quality.subjects_without_arm, 1);
}

// --- EDSS and MRI --------------------------------------------------------------------------

#[test]
fn confirmed_worsening_uses_the_progression_rules() {
    let mut subjects = cohort();
    // KS-109: 2.0 → 3.5 at W12 (+1.5), still 3.5 at W24 (84 days later): confirmed.
    subjects.push(history(
        "KS-109",
        vec![
            rec("KS-109", "BL", &format!("{},{DOSE}", edss(2.0))),
            rec("KS-109", "W12", &edss(3.5)),
            rec("KS-109", "W24", &edss(3.5)),
        ],
    ));
    let f = Fixture::new(subjects);
    let e = f.summary().total.edss;
    assert_eq!(e.followed, 7);
    assert_eq!(e.confirmed_worsening, 1);
    assert_eq!(e.pending_worsening, 3, "KS-101, KS-102, KS-103 worsened at W48, the last visit");
    assert!(f.html().contains(
        "Confirmed EDSS worsening: 1 of 7 subjects with a follow-up assessment (awaiting confirmation: 3)"
    ));
}

#[test]
fn mri_counts_gadolinium_enhancing_lesions_too() {
    let mut subjects = cohort();
    subjects[0].records.push(rec("KS-101", "W48", r#","mri":{"gd_enhancing":2}"#));
    subjects[1].records.push(rec("KS-102", "W48", r#","mri":{"gd_enhancing":0}"#));
    let s = Fixture::new(subjects).summary();
    let w48 = s.total.mri.iter().find(|m| m.visit == "W48").unwrap();
    assert_eq!((w48.total_gd, w48.subjects_with_gd, w48.subjects_gd_read), (2, 1, 2));
    assert_eq!((w48.total_new_t2, w48.subjects_with_new_t2), (4, 3), "merged with the T2 counts");
}

// --- stopping rules, alerts, data quality ----------------------------------------------------

#[test]
fn stopping_rules_alerts_and_overdue_visits_are_reported() {
    let mut f = Fixture::new(cohort());
    f.stopping = vec![
        StoppingRuleStatus {
            rule_id: "dlt-bayes".to_string(),
            title: "Grade ≥ 3 related AEs".to_string(),
            threshold: "stop if Pr(p > 0.20) ≥ 0.80".to_string(),
            current: "1 of 6; Pr = 0.41".to_string(),
            fired: false,
        },
        StoppingRuleStatus {
            rule_id: "deaths".to_string(),
            title: "Any treatment-related death".to_string(),
            threshold: "stop at 1".to_string(),
            current: "1".to_string(),
            fired: true,
        },
    ];
    f.alerts = vec![
        alert(3, "KS-101", "critical", "acknowledged", (2019, 3, 11)),
        alert(1, "KS-103", "warning", "open", (2019, 3, 4)),
        alert(2, "", "info", "resolved", (2019, 3, 5)),
        alert(4, "KS-102", "warning", "silenced", (2019, 5, 27)),
    ];
    f.overdue = vec![
        OverdueVisit { subject: "KS-106".to_string(), visit: "W48".to_string(), days_overdue: 12 },
        OverdueVisit { subject: "KS-104".to_string(), visit: "W48".to_string(), days_overdue: 3 },
    ];
    let s = f.summary();
    assert_eq!(s.alerts.statuses, ["open", "acknowledged", "resolved", "silenced"]);
    let rows: Vec<(&str, &[usize], usize)> =
        s.alerts.by_severity.iter().map(|r| (r.severity.as_str(), r.by_status.as_slice(), r.total)).collect();
    assert_eq!(
        rows,
        [
            ("critical", &[0, 1, 0, 0][..], 1),
            ("warning", &[1, 0, 0, 1][..], 2),
            ("info", &[0, 0, 1, 0][..], 1)
        ]
    );
    let ids: Vec<i64> = s.alerts.listing.iter().map(|a| a.id).collect();
    assert_eq!(ids, [1, 2, 3, 4], "by raising time");
    assert_eq!(s.alerts.listing[2].raised_study_day, Some(8), "KS-101 dosed 2019-03-04");
    assert_eq!(s.alerts.open(), 1);
    assert_eq!(s.overdue_visits[0].subject, "KS-104", "by subject");

    let html = f.html();
    assert!(html.contains("Stopping rules: 1 of 2 FIRED (deaths)."));
    assert!(html.contains("<tr class=\"strong\"><td>deaths</td><td>Any treatment-related death</td><td>stop at 1</td><td>1</td><td>FIRED</td></tr>"), "{html}");
    assert!(
        html.contains("Alerts raised in the period: 4 (open: 1, acknowledged: 1, resolved: 1, silenced: 1).")
    );
    assert!(html.contains("<td>cohort</td><td>rule-x</td><td>Alert 2</td><td>2019-03-05</td>"), "{html}");
    assert!(html.contains("<td>study day 8</td>"));
    let csv = f.csv_of("alerts_by_severity");
    assert_eq!(
        csv.lines().collect::<Vec<_>>(),
        [
            "Severity,open,acknowledged,resolved,silenced,Total",
            "critical,0,1,0,0,1",
            "warning,1,0,0,1,2",
            "info,0,0,1,0,1",
            "All,1,1,1,1,4",
        ]
    );
    assert_eq!(f.csv_of("overdue_visits"), "Subject,Visit,Days overdue\nKS-104,W48,3\nKS-106,W48,12\n");
    assert_eq!(csv_line(&f.csv_of("data_quality"), "Overdue visits"), ["Overdue visits", "2"]);
}

// --- outputs ------------------------------------------------------------------------------

#[test]
fn html_and_csv_are_deterministic() {
    let build = |reverse: bool, closed: bool| {
        let mut f = Fixture::new(two_arms(cohort()));
        if reverse {
            f.subjects.reverse();
        }
        f.closed = closed;
        f.alerts = vec![alert(1, "KS-101", "warning", "open", (2019, 3, 11))];
        (f.html(), f.csv())
    };
    for closed in [false, true] {
        let once = build(false, closed);
        assert_eq!(once, build(false, closed));
        assert_eq!(once, build(true, closed), "input order changes nothing");
    }
    let names: Vec<String> = build(false, false).1.into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 21);
    assert_eq!(names[0], "01_key_figures.csv");
    assert_eq!(names[20], "21_overdue_visits.csv");
}

#[test]
fn the_charts_are_inline_svg_with_labelled_axes() {
    let mut subjects = cohort();
    subjects[0].records.push(rec("KS-101", "W4", &lab("ALT", 130.0, 40.0)));
    subjects[0].records.push(rec("KS-101", "W4", &lab("BILI", 50.0, 21.0)));
    let html = Fixture::new(subjects).html();
    assert_eq!(html.matches("<svg ").count(), 5);
    for label in [
        "Dosed subjects (cumulative)",
        "Date of first dose",
        "Adverse events (n)",
        "EDSS (0–10)",
        "Study week (0 = first dose)",
        "Lesions (total count)",
        "New/enlarging T2",
        "Peak ALT or AST (×ULN, log scale)",
        "Potential Hy&apos;s law",
    ] {
        assert!(html.contains(label), "missing chart text `{label}`");
    }
    assert!(html.contains("\nKS-101\n</text>"), "the Hy's law subject is named on the eDISH plot");
}

// --- PDF (cargo feature `pdf`) --------------------------------------------------------------

#[cfg(feature = "pdf")]
#[test]
fn the_pdf_is_typeset_and_reproducible() {
    for closed in [false, true] {
        let mut f = Fixture::new(two_arms(cohort()));
        f.closed = closed;
        f.title = "Cells & *MS* #sys [phase I]".to_string();
        f.alerts = vec![alert(1, "KS-101", "warning", "open", (2019, 3, 11))];
        let input = f.input();
        let summary = summarize(&input);
        let pdf = render_pdf(&input, &summary).unwrap_or_else(|e| panic!("{e}"));
        assert!(pdf.starts_with(b"%PDF-"));
        assert_eq!(pdf, render_pdf(&input, &summary).unwrap_or_default(), "same input, same bytes");
        if let Ok(dir) = std::env::var("VIGIL_REPORT_DUMP") {
            let name = if closed { "closed.pdf" } else { "open.pdf" };
            std::fs::write(format!("{dir}/{name}"), &pdf).unwrap_or_default();
        }
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.contains("D:20200301000000Z"), "the document date is the cut-off");
    }
}

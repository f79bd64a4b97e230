//! The constructed cohort whose numbers are known by construction, and the fixture that
//! renders its report: shared by the report tests beside each section (`sections/*.rs`,
//! `cut.rs`). The tests here are of the report as a whole: the findings, blinding,
//! escaping, determinism, the page, the charts and the PDF.

use super::*;
use crate::model::{Record, SubjectHistory, SubjectId};
use crate::store::AlertRow;
use chrono::TimeZone;

pub(super) const ARM: &str = "MSC-HIGH";
pub(super) const DOSE: &str = r#""doses":[{"start":"2019-03-04T09:10:00+01:00","end":"2019-03-04T09:40:00+01:00","product":"autologous BM-MSC","amount":1.6e6,"unit":"cells/kg"}]"#;

pub(super) fn date_of(visit: &str) -> &'static str {
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
pub(super) fn rec(subject: &str, visit: &str, extra: &str) -> Record {
    let json = format!(
        r#"{{"subject":"{subject}","site":"KS","arm":"{ARM}","visit":"{visit}","date":"{}"{extra}}}"#,
        date_of(visit)
    );
    Record::from_json(&json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

pub(super) fn edss(v: f64) -> String {
    format!(r#","scores":[{{"name":"EDSS","value":{v}}}]"#)
}

pub(super) fn edss_mri(v: f64, new_t2: u32) -> String {
    format!(r#","scores":[{{"name":"EDSS","value":{v}}}],"mri":{{"t2_new_or_enlarging":{new_t2}}}"#)
}

pub(super) fn ae(
    id: Option<&str>,
    term: &str,
    grade: Option<u8>,
    onset: Option<&str>,
    extra: &str,
) -> String {
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

pub(super) fn history(subject: &str, records: Vec<Record>) -> SubjectHistory {
    SubjectHistory::new(SubjectId::parse(subject).unwrap(), records)
}

/// Seven subjects, six dosed, modelled on the seed study's abstract: EDSS stable in 6/6
/// at W12 and worse in 3/5 at W48 (variant A); new T2 lesions in 1/6 at W12, 3/5 at W48.
pub(super) fn cohort() -> Vec<SubjectHistory> {
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

pub(super) fn visit_order() -> Vec<String> {
    ["BL", "H2", "D7", "W4", "W12", "W24", "W48"].map(String::from).to_vec()
}

pub(super) fn irr_terms() -> Vec<String> {
    vec!["Infusion related reaction".to_string(), "Allergic reaction".to_string()]
}

pub(super) struct Fixture {
    pub(super) subjects: Vec<SubjectHistory>,
    pub(super) rule: crate::rules::EdssRule,
    pub(super) visits: Vec<String>,
    pub(super) terms: Vec<String>,
    pub(super) title: String,
    pub(super) alerts: Vec<AlertRow>,
    pub(super) stopping: Vec<StoppingRuleStatus>,
    pub(super) overdue: Vec<OverdueVisit>,
    pub(super) closed: bool,
    pub(super) as_of: chrono::DateTime<chrono::Utc>,
}

impl Fixture {
    pub(super) fn new(subjects: Vec<SubjectHistory>) -> Self {
        Self {
            subjects,
            rule: crate::rules::EdssRule::default(),
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

    pub(super) fn input(&self) -> DsmbInput<'_> {
        DsmbInput {
            study_title: &self.title,
            as_of: self.as_of,
            subjects: &self.subjects,
            edss_rule: &self.rule,
            visit_order: &self.visits,
            infusion_reaction_terms: &self.terms,
            quarantined_records: 2,
            alerts: &self.alerts,
            stopping_rules: &self.stopping,
            snapshot_hash: HASH,
            closed: self.closed,
            overdue_visits: &self.overdue,
            timezone: chrono_tz::Tz::UTC,
            audit_head: "entry 7, SHA-256 00ff",
            signed_decisions: &[],
        }
    }

    pub(super) fn summary(&self) -> DsmbSummary {
        summarize(&self.input())
    }

    pub(super) fn html(&self) -> String {
        let input = self.input();
        try_render_html(&input, &summarize(&input)).expect("the template renders")
    }

    pub(super) fn csv(&self) -> Vec<(String, String)> {
        let input = self.input();
        render_csv(&input, &summarize(&input))
    }

    /// The CSV of the table whose file name ends in `{id}.csv`.
    pub(super) fn csv_of(&self, id: &str) -> String {
        let files = self.csv();
        files
            .into_iter()
            .find(|(name, _)| name.ends_with(&format!("_{id}.csv")))
            .map(|(_, text)| text)
            .unwrap_or_else(|| panic!("no CSV for {id}"))
    }
}

pub(super) const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

pub(super) const LOW: &str = "MSC-LOW";

/// KS-104, KS-105, KS-106 and KS-107 moved to the low-dose arm; the others stay high.
pub(super) fn two_arms(mut subjects: Vec<SubjectHistory>) -> Vec<SubjectHistory> {
    for h in &mut subjects {
        if ["KS-104", "KS-105", "KS-106", "KS-107"].contains(&h.subject.as_str()) {
            for r in &mut h.records {
                r.arm = Some(LOW.to_string());
            }
        }
    }
    subjects
}

pub(super) fn alert(
    id: i64,
    subject: &str,
    severity: &str,
    status: &str,
    (y, m, d): (i32, u32, u32),
) -> AlertRow {
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
        clinical_time: None,
        escalation_step: 0,
        next_escalation_at: None,
    }
}

/// A record at an arbitrary date (`extra` starts with a comma).
pub(super) fn rec_on(subject: &str, date: &str, extra: &str) -> Record {
    let json = format!(r#"{{"subject":"{subject}","arm":"{ARM}","date":"{date}"{extra}}}"#);
    Record::from_json(&json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// A coded AE (`extra` is appended inside the object).
pub(super) fn coded(term: &str, pt: &str, soc: &str, grade: u8, extra: &str) -> String {
    format!(
        r#","adverse_events":[{{"term":"{term}","meddra_pt":"{pt}","meddra_soc":"{soc}","grade":{grade},"onset":"2019-03-20"{extra}}}]"#
    )
}

pub(super) fn lab(test: &str, value: f64, high: f64) -> String {
    format!(r#","labs":[{{"test":"{test}","value":{value},"high":{high}}}]"#)
}

/// The CSV line whose first field is `label`, as fields (only the first may be quoted).
pub(super) fn csv_line<'a>(csv: &'a str, label: &'a str) -> Vec<&'a str> {
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

// --- the whole report -----------------------------------------------------------------------

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
    assert_eq!(s.alerts.listing[2].finding_study_day, Some(8), "KS-101 dosed 2019-03-04");
    assert_eq!(s.alerts.open(), 1);
    assert_eq!(s.overdue_visits[0].subject, "KS-104", "by subject");

    let html = f.html();
    assert!(html.contains("Stopping rules: 1 of 2 FIRED (deaths)."));
    assert!(html.contains("<tr class=\"strong\"><td>deaths</td><td>Any treatment-related death</td><td>stop at 1</td><td>1</td><td>FIRED</td></tr>"), "{html}");
    assert!(
        html.contains("Alerts raised in the period: 4 (open: 1, acknowledged: 1, resolved: 1, silenced: 1).")
    );
    assert!(
        html.contains("<td>cohort</td><td>rule-x</td><td>Alert 2</td><td>2019-03-05</td><td>2019-03-05</td>"),
        "{html}"
    );
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

#[test]
fn infusion_reactions_match_terms_as_the_rules_do_and_on_the_meddra_pt() {
    // A hyphen, and a reaction reported in the site's words but coded to a listed PT:
    // the rules alert on both, so the report must count both.
    let s =
        |id: &str, extra: &str| history(id, vec![rec(id, "BL", &format!(",{DOSE}")), rec(id, "H2", extra)]);
    let subjects = vec![
        s("KS-201", &ae(Some("A"), "Infusion-related reaction", Some(2), Some("2019-03-04"), "")),
        s(
            "KS-202",
            &ae(
                Some("B"),
                "chills and rash",
                Some(1),
                Some("2019-03-04"),
                r#","meddra_pt":"Allergic reaction""#,
            ),
        ),
        s("KS-203", &ae(Some("C"), "Headache", Some(1), Some("2019-03-04"), "")),
    ];
    let f = Fixture::new(subjects);
    let listed: Vec<String> =
        f.summary().total.infusion_reactions.listing.iter().map(|r| r.subject.as_str().to_string()).collect();
    assert_eq!(listed, ["KS-201", "KS-202"]);
}

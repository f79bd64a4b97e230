//! The report on real data nobody on the team wrote: the CDISC pilot study CDISCPILOT01
//! (tests/data/cdiscpilot01). Histories are built straight from the SDTM CSVs, and the
//! numbers are checked against the facts in that folder's README, or against a direct
//! count over the CSV rows where the README gives none.

use super::*;
use crate::ingest::sdtm::CRITERIA;
use crate::model::{Record, Seriousness, SubjectHistory, SubjectId};
use chrono::TimeZone;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cdiscpilot01");

/// The rows of one dataset as column → value maps, read by the ingest stage's CSV reader.
fn rows(name: &str) -> Vec<BTreeMap<String, String>> {
    let path = std::path::Path::new(DIR).join(format!("{name}.csv"));
    crate::ingest::csv::rows(&path).unwrap_or_else(|e| panic!("{e:#}"))
}

fn get<'a>(row: &'a BTreeMap<String, String>, col: &str) -> &'a str {
    row.get(col).map_or("", |v| v.trim())
}

fn record(subject: &str, mut fields: Map<String, Value>) -> Record {
    fields.insert("subject".into(), json!(subject));
    let text = Value::Object(fields).to_string();
    Record::from_json(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

struct Pilot {
    subjects: Vec<SubjectHistory>,
    visits: Vec<String>,
    ae: Vec<BTreeMap<String, String>>,
}

fn load() -> Pilot {
    let mut records: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    let mut add = |subject: &str, r: Record| records.entry(subject.to_string()).or_default().push(r);

    for r in rows("dm") {
        let mut f = Map::new();
        f.insert("site".into(), json!(get(&r, "SITEID")));
        f.insert("arm".into(), json!(get(&r, "ARM")));
        add(get(&r, "USUBJID"), record(get(&r, "USUBJID"), f));
    }
    for r in rows("sv") {
        let mut f = Map::new();
        f.insert("visit".into(), json!(get(&r, "VISIT")));
        f.insert("date".into(), json!(get(&r, "SVSTDTC")));
        add(get(&r, "USUBJID"), record(get(&r, "USUBJID"), f));
    }
    for r in rows("ds").iter().filter(|r| get(r, "DSCAT") == "DISPOSITION EVENT") {
        let decod = get(r, "DSDECOD");
        let (status, reason) = match decod {
            "COMPLETED" => ("completed", None),
            "SCREEN FAILURE" => ("screen_failure", None),
            "DEATH" => ("death", None),
            "LOST TO FOLLOW-UP" => ("lost_to_follow_up", None),
            other => ("withdrawn", Some(other)),
        };
        let mut f = Map::new();
        f.insert("date".into(), json!(get(r, "DSSTDTC")));
        f.insert(
            "disposition".into(),
            json!({"status": status, "reason": reason, "date": get(r, "DSSTDTC")}),
        );
        add(get(r, "USUBJID"), record(get(r, "USUBJID"), f));
    }
    for r in rows("ex") {
        let mut dose = Map::new();
        dose.insert("start".into(), json!(get(&r, "EXSTDTC")));
        if !get(&r, "EXENDTC").is_empty() {
            dose.insert("end".into(), json!(get(&r, "EXENDTC")));
        }
        dose.insert("product".into(), json!(get(&r, "EXTRT")));
        dose.insert("unit".into(), json!(get(&r, "EXDOSU")));
        if let Ok(amount) = get(&r, "EXDOSE").parse::<f64>() {
            dose.insert("amount".into(), json!(amount));
        }
        let mut f = Map::new();
        f.insert("doses".into(), json!([dose]));
        add(get(&r, "USUBJID"), record(get(&r, "USUBJID"), f));
    }
    let ae = rows("ae");
    for r in &ae {
        let mut a = Map::new();
        a.insert("id".into(), json!(get(r, "AESEQ")));
        a.insert("term".into(), json!(get(r, "AETERM")));
        a.insert("meddra_pt".into(), json!(get(r, "AEDECOD")));
        a.insert("meddra_soc".into(), json!(get(r, "AEBODSYS")));
        let grade = match get(r, "AESEV") {
            "MILD" => 1,
            "MODERATE" => 2,
            "SEVERE" => 3,
            other => panic!("AESEV {other}"),
        };
        a.insert("grade".into(), json!(grade));
        // AESER is the seriousness call. The pilot also flags criteria on 33 rows with
        // AESER = N; here the flags are read on AESER = Y rows only (the importer keeps them
        // all: `the_pilot_imported_through_sdtm_queries_its_seriousness`).
        let serious = get(r, "AESER") == "Y";
        let criteria: Vec<&str> =
            CRITERIA.iter().filter(|(col, _)| serious && get(r, col) == "Y").map(|(_, c)| *c).collect();
        a.insert("serious".into(), json!(serious));
        a.insert("seriousness".into(), json!(criteria));
        if !get(r, "AEREL").is_empty() {
            a.insert("related".into(), json!(get(r, "AEREL")));
        }
        for (col, key) in [("AESTDTC", "onset"), ("AEENDTC", "end"), ("AEOUT", "outcome")] {
            if !get(r, col).is_empty() {
                a.insert(key.into(), json!(get(r, col)));
            }
        }
        let mut f = Map::new();
        f.insert("adverse_events".into(), json!([a]));
        add(get(r, "USUBJID"), record(get(r, "USUBJID"), f));
    }
    // Only the liver tests: the rest of the 59,580 rows are not read into records.
    for r in rows("lb").iter().filter(|r| ["ALT", "AST", "BILI"].contains(&get(r, "LBTESTCD"))) {
        let Ok(v) = get(r, "LBSTRESN").parse::<f64>() else { continue };
        let mut l = Map::new();
        l.insert("test".into(), json!(get(r, "LBTESTCD")));
        l.insert("value".into(), json!(v));
        if let Ok(h) = get(r, "LBSTNRHI").parse::<f64>() {
            l.insert("high".into(), json!(h));
        }
        let mut f = Map::new();
        if !get(r, "LBDTC").is_empty() {
            f.insert("date".into(), json!(get(r, "LBDTC")));
        }
        f.insert("labs".into(), json!([l]));
        add(get(r, "USUBJID"), record(get(r, "USUBJID"), f));
    }
    let subjects = records
        .into_iter()
        .map(|(id, rs)| {
            SubjectHistory::new(SubjectId::parse(&id).unwrap_or_else(|e| panic!("{id}: {e}")), rs)
        })
        .collect();
    let visits = rows("tv").iter().map(|r| get(r, "VISIT").to_string()).collect();
    Pilot { subjects, visits, ae }
}

/// Subjects (distinct USUBJID) and records per value of an ae column, counted directly.
fn direct_counts(ae: &[BTreeMap<String, String>], col: &str) -> BTreeMap<String, (usize, usize)> {
    let mut subjects: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    let mut events: BTreeMap<String, usize> = BTreeMap::new();
    for r in ae {
        subjects.entry(get(r, col).to_string()).or_default().insert(get(r, "USUBJID"));
        *events.entry(get(r, col).to_string()).or_default() += 1;
    }
    events.into_iter().map(|(k, e)| (k.clone(), (subjects[&k].len(), e))).collect()
}

/// The closed report's input: after every date in the data.
fn closed_input<'a>(pilot: &'a Pilot, rule: &'a crate::rules::EdssRule) -> DsmbInput<'a> {
    DsmbInput {
        study_title: "CDISCPILOT01 — xanomeline in Alzheimer's disease",
        as_of: chrono::Utc.with_ymd_and_hms(2016, 1, 1, 0, 0, 0).unwrap(),
        subjects: &pilot.subjects,
        edss_rule: rule,
        visit_order: &pilot.visits,
        infusion_reaction_terms: &[],
        quarantined_records: 0,
        alerts: &[],
        stopping_rules: &[],
        snapshot_hash: "pilot",
        closed: true,
        overdue_visits: &[],
        timezone: chrono_tz::Tz::UTC,
        audit_head: "",
        signed_decisions: &[],
    }
}

#[test]
fn the_cdisc_pilot_reproduces_the_readme_facts() {
    let pilot = load();
    let rule = crate::rules::EdssRule::default();
    let input = closed_input(&pilot, &rule);
    let s = summarize(&input);

    // Subjects per arm (dm ARM); the randomised are dosed, screen failures are not.
    let arms: Vec<(&str, usize, usize)> =
        s.arms.iter().map(|g| (g.label.as_str(), g.disposition.screened, g.n())).collect();
    assert_eq!(
        arms,
        [
            ("Placebo", 86, 86),
            ("Screen Failure", 52, 0),
            ("Xanomeline High Dose", 84, 84),
            ("Xanomeline Low Dose", 84, 84)
        ]
    );
    let d = &s.total.disposition;
    assert_eq!((d.screened, d.screen_failures, d.enrolled, d.dosed), (306, 52, 254, 254));
    // ds: COMPLETED 110, ADVERSE EVENT 92, WITHDRAWAL BY SUBJECT 27, ..., DEATH 3.
    assert_eq!(d.completed, 110);
    let left: BTreeMap<String, usize> = d.discontinued.iter().map(|x| (x.label(), x.subjects)).collect();
    assert_eq!(left["Withdrawn: ADVERSE EVENT"], 92);
    assert_eq!(left["Withdrawn: WITHDRAWAL BY SUBJECT"], 27);
    assert_eq!(left["Withdrawn: STUDY TERMINATED BY SPONSOR"], 7);
    assert_eq!(left["Death"], 3);
    assert_eq!(left["Lost to follow-up"], 2);
    assert_eq!(d.completed + d.discontinued_total() + d.ongoing, 254);
    // sv: 254 at BASELINE, 111 reached WEEK 26.
    let visit = |v: &str| d.visits.iter().find(|c| c.visit == v).map(|c| (c.subjects, c.dosed));
    assert_eq!(visit("SCREENING 1"), Some((306, 254)));
    assert_eq!(visit("BASELINE"), Some((254, 254)));
    assert_eq!(visit("WEEK 26").map(|c| c.0), Some(111));
    // ex: 591 dose records in 254 subjects.
    assert_eq!((s.total.exposure.subjects, s.total.exposure.doses), (254, 591));

    // Adverse events: 1,191 records in 225 subjects; by arm 301/69, 455/79, 435/77.
    let ae = &s.total.adverse_events;
    assert_eq!(ae.grades.any, Tally { events: 1191, subjects: 225 });
    let by_arm: Vec<(usize, usize)> = ["Placebo", "Xanomeline High Dose", "Xanomeline Low Dose"]
        .iter()
        .map(|a| s.arm(a).map(|g| g.adverse_events.grades.any).map_or((0, 0), |t| (t.events, t.subjects)))
        .collect();
    assert_eq!(by_arm, [(301, 69), (455, 79), (435, 77)]);
    // AESEV MILD 770, MODERATE 378, SEVERE 43; 31 subjects with a severe AE.
    let events: Vec<usize> = (1..=3).map(|g| ae.grades.grade(g).events).collect();
    assert_eq!(events, [770, 378, 43]);
    assert_eq!(ae.grades.grade(3).subjects, 31, "worst grade severe");
    assert_eq!(ae.grade3_plus, Tally { events: 43, subjects: 31 });
    // AEREL POSSIBLE 343 + PROBABLE 361.
    assert_eq!(ae.related.events, 704);
    // AESER = Y: 3 records in 3 subjects (1 life-threatening, 2 hospitalisations).
    assert_eq!(ae.serious, Tally { events: 3, subjects: 3 });
    assert_eq!(ae.criterion(Seriousness::LifeThreatening), Tally { events: 1, subjects: 1 });
    assert_eq!(ae.criterion(Seriousness::Hospitalization), Tally { events: 2, subjects: 2 });
    assert_eq!(ae.criterion(Seriousness::Death), Tally::default());
    let saes: Vec<(&str, &str, Option<u8>)> = s
        .total
        .serious_listing
        .iter()
        .map(|a| (a.subject.as_str(), a.term.as_str(), a.grade.map(|g| g.value())))
        .collect();
    assert_eq!(
        saes,
        [
            ("01-709-1424", "SYNCOPE", Some(2)),
            ("01-718-1170", "SYNCOPE", Some(3)),
            ("01-718-1371", "PARTIAL SEIZURES WITH SECONDARY GENERALISATION", Some(3)),
        ]
    );
    // The 3 fatal events (AEOUT = FATAL), each with AESER = N: listed as deaths, and
    // flagged as a contradiction in the data quality section.
    assert_eq!(ae.fatal, Tally { events: 3, subjects: 3 });
    assert_eq!(s.data_quality.fatal_not_serious, 3);
    let deaths: Vec<(&str, Option<&str>)> =
        s.total.deaths.iter().map(|d| (d.subject.as_str(), d.cause.as_deref())).collect();
    assert_eq!(
        deaths,
        [
            ("01-701-1211", Some("SUDDEN DEATH")),
            ("01-704-1445", Some("COMPLETED SUICIDE")),
            ("01-710-1083", Some("MYOCARDIAL INFARCTION"))
        ]
    );

    // By term: 242 preferred terms in 23 SOCs; the ten most frequent by records.
    let t = &s.total.by_term;
    assert_eq!(t.socs.len(), 23);
    assert_eq!(t.socs.iter().map(|soc| soc.terms.len()).sum::<usize>(), 242);
    let mut terms: Vec<(usize, &str)> =
        t.socs.iter().flat_map(|soc| soc.terms.iter().map(|r| (r.tally.events, r.term.as_str()))).collect();
    terms.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    assert_eq!(
        terms[..12],
        [
            (84, "PRURITUS"),
            (78, "APPLICATION SITE PRURITUS"),
            (59, "ERYTHEMA"),
            (46, "APPLICATION SITE ERYTHEMA"),
            (45, "RASH"),
            (41, "APPLICATION SITE IRRITATION"),
            (36, "APPLICATION SITE DERMATITIS"),
            (34, "DIZZINESS"),
            (25, "SKIN IRRITATION"),
            (24, "SINUS BRADYCARDIA"),
            (21, "DIARRHOEA"),
            (21, "HEADACHE"),
        ]
    );
    // Subjects per term and per SOC, counted once, against a direct count of the rows.
    let direct = direct_counts(&pilot.ae, "AEDECOD");
    for soc in &t.socs {
        for term in &soc.terms {
            assert_eq!((term.tally.subjects, term.tally.events), direct[&term.term], "{}", term.term);
        }
    }
    assert_eq!(t.find_term("PRURITUS").map(|r| r.tally.subjects), Some(57));
    let direct = direct_counts(&pilot.ae, "AEBODSYS");
    for soc in &t.socs {
        assert_eq!((soc.tally.subjects, soc.tally.events), direct[&soc.soc], "{}", soc.soc);
    }

    // Liver: ALT > 3×ULN 3 subjects, AST > 3×ULN 4, either 4, BILI > 2×ULN 2; exactly one
    // potential Hy's law case.
    let labs = &s.total.labs;
    assert_eq!(
        (labs.alt_above_3, labs.ast_above_3, labs.alt_or_ast_above_3, labs.bili_above_2),
        (3, 4, 4, 2)
    );
    let hys: Vec<&str> = labs
        .points
        .iter()
        .filter(|p| p.quadrant == Quadrant::PotentialHysLaw)
        .map(|p| p.subject.as_str())
        .collect();
    assert_eq!(hys, ["01-705-1186"]);
    assert_eq!(labs.quadrants.potential_hys_law, 1);
    assert_eq!(labs.quadrants.temples_corollary, 3, "the other three with ALT/AST > 3×ULN");
    assert_eq!(labs.quadrants.cholestasis, 1, "01-709-1029");

    // The documents render, the open one without any arm.
    let html = render_html(&input, &s);
    assert!(html.contains("Xanomeline High Dose (N=84)"));
    let csv = render_csv(&input, &s);
    assert_eq!(csv.len(), 21);
    // The screen failures (no dosed subject) are a column of the enrollment tables only.
    let of = |id: &str| csv.iter().find(|(n, _)| n.ends_with(&format!("_{id}.csv"))).map(|(_, t)| t.as_str());
    assert!(of("disposition").is_some_and(|t| t.contains(",Screen Failure,0,")));
    assert!(of("ae_by_soc_pt").is_some_and(|t| !t.contains("Screen Failure") && t.contains(",Placebo,86,")));
    let open = DsmbInput { closed: false, ..input };
    let open_summary = summarize(&open);
    assert_eq!(open_summary.total.adverse_events, s.total.adverse_events);
    let open_html = render_html(&open, &open_summary);
    for arm in ["Placebo", "Xanomeline", "Screen Failure"] {
        assert!(!open_html.contains(arm), "the open report names {arm}");
    }
    assert!(open_html.contains("All subjects (N=254)"));
    if let Ok(dir) = std::env::var("VIGIL_REPORT_DUMP") {
        let _ = std::fs::write(format!("{dir}/pilot-closed.html"), &html);
        let _ = std::fs::write(format!("{dir}/pilot-open.html"), &open_html);
    }
}

/// The pilot as `vigil ingest --format sdtm` reads it: seriousness follows AESER (3
/// serious events), and the 33 AESER = N events with an ICH criterion flag (3 of them the
/// deaths) are counted in the data-quality section, the deaths also as "fatal, not serious".
fn pilot_through_sdtm() -> Pilot {
    let dir = tempfile::tempdir().unwrap();
    for f in ["dm.csv", "ex.csv", "ae.csv", "ds.csv"] {
        std::fs::copy(std::path::Path::new(DIR).join(f), dir.path().join(f)).unwrap();
    }
    let import = crate::ingest::sdtm::read_dir(dir.path()).unwrap();
    assert!(import.rejected.is_empty(), "{:?}", import.rejected.first());
    let mut by_subject: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for r in import.records {
        by_subject.entry(r.record.subject.as_str().to_string()).or_default().push(r.record);
    }
    let subjects: Vec<SubjectHistory> = by_subject
        .into_iter()
        .map(|(s, rs)| SubjectHistory::new(SubjectId::parse(&s).unwrap(), rs))
        .collect();
    Pilot { subjects, visits: Vec::new(), ae: Vec::new() }
}

#[test]
fn the_pilot_imported_through_sdtm_queries_its_seriousness() {
    let pilot = pilot_through_sdtm();
    let rule = crate::rules::EdssRule::default();
    let s = summarize(&closed_input(&pilot, &rule));

    let ae = &s.total.adverse_events;
    assert_eq!(ae.serious, Tally { events: 3, subjects: 3 });
    assert_eq!(ae.criterion(Seriousness::Hospitalization), Tally { events: 2, subjects: 2 });
    assert_eq!(ae.fatal, Tally { events: 3, subjects: 3 });
    assert_eq!(s.data_quality.seriousness_inconsistent, 33);
    assert_eq!(s.data_quality.fatal_not_serious, 3);
    // AESEV is a severity: the tables say so instead of "CTCAE grade".
    assert_eq!(ae.grades.scale(), sections::adverse_events::GradeScale::Severity);
    let html = render_html(&closed_input(&pilot, &rule), &s);
    assert!(html.contains("seriousness inconsistent — to query"), "no data-quality row");
    assert!(html.contains("Adverse events by worst severity (mapped)"));
    assert!(!html.contains("by worst CTCAE grade"));
    assert!(html.contains("5 (severity, mapped)"), "the deaths' grade is labelled as mapped");
}

/// The shipped pack on the imported pilot: the medical monitor is asked to verify the 33
/// inconsistent events, only the 3 AESER = Y events are SAEs, and no AESER = N event with a
/// criterion flag starts an SAE clock, except the 3 deaths, which the SAE clock rule clocks
/// as grade 5 whatever the seriousness (src/rules/sae_clock.rs).
#[test]
fn the_pack_on_the_imported_pilot_asks_to_verify_and_starts_no_clock_for_a_flag_alone() {
    let pilot = pilot_through_sdtm();
    let pack = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/msc-progressive-ms.yaml");
    let rules = crate::rules::load_rules(&[pack]).unwrap_or_else(|e| panic!("{e:?}"));
    let as_of = chrono::Utc.with_ymd_and_hms(2016, 1, 1, 0, 0, 0).unwrap();
    let fired = |id: &str| -> Vec<(String, String)> {
        let rule = rules.get(id).unwrap();
        pilot
            .subjects
            .iter()
            .flat_map(|h| {
                rule.evaluate(h, as_of, &[]).into_iter().map(|f| (h.subject.as_str().to_string(), f.episode))
            })
            .collect()
    };
    assert_eq!(fired("serious-adverse-event").len(), 3);
    assert_eq!(fired("seriousness-to-verify").len(), 33);
    let aes: Vec<(String, &crate::model::AdverseEvent)> = pilot
        .subjects
        .iter()
        .flat_map(|h| h.adverse_events().into_iter().map(|a| (h.subject.as_str().to_string(), a)))
        .collect();
    let clocked: BTreeSet<(String, String)> = fired("sae-reporting-clock")
        .into_iter()
        .map(|(s, e)| (s, e.split(':').nth(1).unwrap_or_default().to_string()))
        .collect();
    for (subject, a) in &aes {
        let id = a.id.clone().unwrap_or_default();
        // Deaths included: the seriousness is queried, not assumed (team decision).
        if a.seriousness_inconsistent() {
            assert!(
                !clocked.contains(&(subject.clone(), id)),
                "{subject} {}: clocked on a flag or an outcome alone",
                a.term
            );
        }
    }
    let serious_clocked = aes
        .iter()
        .filter(|(s, a)| a.serious && clocked.contains(&(s.clone(), a.id.clone().unwrap_or_default())))
        .count();
    assert_eq!(serious_clocked, 3, "every AESER = Y event has its clock");
    assert_eq!(clocked.len(), 3, "the 3 SAEs only: {clocked:?}");
}

/// The pilot's reports as PDF: byte-identical across runs, and (when poppler's pdftoppm is
/// installed) every page converts to an image.
#[cfg(feature = "pdf")]
#[test]
fn the_cdisc_pilot_pdf_converts_to_pages() {
    let pilot = load();
    let rule = crate::rules::EdssRule::default();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for closed in [false, true] {
        let input = DsmbInput { closed, ..closed_input(&pilot, &rule) };
        let summary = summarize(&input);
        let started = std::time::Instant::now();
        let pdf = render_pdf(&input, &summary).unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "pilot {} PDF: {} bytes in {:?}",
            if closed { "closed" } else { "open" },
            pdf.len(),
            started.elapsed()
        );
        assert!(pdf.starts_with(b"%PDF-"));
        assert!(pdf == render_pdf(&input, &summary).unwrap_or_default(), "same input, same bytes");
        let name = if closed { "closed" } else { "open" };
        let path = dir.path().join(format!("{name}.pdf"));
        std::fs::write(&path, &pdf).unwrap_or_else(|e| panic!("{e}"));
        if let Ok(out) = std::env::var("VIGIL_REPORT_DUMP") {
            let _ = std::fs::write(format!("{out}/pilot-{name}.pdf"), &pdf);
        }
        let prefix = dir.path().join(name);
        match std::process::Command::new("pdftoppm")
            .args(["-r", "30", "-png"])
            .arg(&path)
            .arg(&prefix)
            .status()
        {
            Ok(status) => {
                assert!(status.success(), "pdftoppm failed on the {name} report");
                let pages = std::fs::read_dir(dir.path())
                    .map(|d| {
                        d.filter_map(Result::ok)
                            .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{name}-")))
                            .count()
                    })
                    .unwrap_or(0);
                eprintln!("pilot {name} PDF: {pages} pages");
                assert!(pages >= 10, "only {pages} pages");
            }
            Err(e) => eprintln!("pdftoppm not run ({e}); install poppler-utils to check the pages"),
        }
    }
}

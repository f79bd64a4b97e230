//! Imports end to end through `vigil ingest`: the CDISC pilot SDTM package, the HL7 FHIR
//! R4 examples, and `vigil replay` showing the impact of a rule change.

mod common;

use common::{Deployment, REPO};
use std::collections::BTreeMap;

fn ingest(d: &Deployment, args: &[&str]) -> std::process::Output {
    let mut full = vec!["ingest", "--config", d.config.to_str().unwrap()];
    full.extend(args);
    std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(&full)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run vigil ingest")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cdisc_pilot_facts_are_reproduced_from_an_sdtm_import() {
    let d = Deployment::new(None);
    let out = ingest(&d, &["--format", "sdtm", &format!("{REPO}/tests/data/cdiscpilot01")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let store = d.store().await;
    let subjects = store.all_histories().await.unwrap();
    assert_eq!(subjects.len(), 306);
    let mut arms: BTreeMap<String, usize> = BTreeMap::new();
    for h in &subjects {
        *arms.entry(h.arm().unwrap_or("").to_string()).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> =
        [("Placebo", 86), ("Screen Failure", 52), ("Xanomeline High Dose", 84), ("Xanomeline Low Dose", 84)]
            .into_iter()
            .map(|(a, n)| (a.to_string(), n))
            .collect();
    assert_eq!(arms, expected);
    let aes: Vec<_> = subjects.iter().flat_map(|h| h.adverse_events()).collect();
    assert_eq!(aes.len(), 1191);
    assert_eq!(subjects.iter().filter(|h| !h.adverse_events().is_empty()).count(), 225);
    let grade = |g: u8| aes.iter().filter(|a| a.grade.map(|x| x.value()) == Some(g)).count();
    // AESEV MILD/MODERATE/SEVERE, a fatal outcome read as grade 5 (3 of the 43 SEVERE).
    assert_eq!((grade(1), grade(2), grade(3), grade(5)), (770, 378, 40, 3), "AESEV with AEOUT");
    assert_eq!(aes.iter().filter(|a| a.onset.as_ref().is_some_and(|o| o.is_partial())).count(), 26);

    // The shipped liver rules on the imported labs.
    let alerts = store.alerts().await.unwrap();
    let subjects_of = |rule: &str| -> Vec<String> {
        let mut s: Vec<String> =
            alerts.iter().filter(|a| a.rule_id == rule).map(|a| a.subject.clone()).collect();
        s.sort();
        s.dedup();
        s
    };
    assert_eq!(subjects_of("hys-law"), ["01-705-1186"]);
    assert_eq!(
        subjects_of("transaminases-3x-uln"),
        ["01-705-1186", "01-705-1292", "01-705-1310", "01-708-1286"]
    );
    // Deaths: the three fatal events are serious (AESDTH = Y) although AESER = N.
    let fatal: Vec<&str> = aes
        .iter()
        .filter(|a| a.seriousness.contains(&vigil::model::Seriousness::Death))
        .map(|a| a.term.as_str())
        .collect();
    assert_eq!(fatal.len(), 3, "{fatal:?}");

    // Importing again changes nothing.
    let before = store.record_count().await.unwrap();
    let again = ingest(&d, &["--format", "sdtm", &format!("{REPO}/tests/data/cdiscpilot01")]);
    assert!(again.status.success());
    assert_eq!(store.record_count().await.unwrap(), before);
    assert_eq!(store.alerts().await.unwrap().len(), alerts.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fhir_examples_are_imported_without_personal_data() {
    let d = Deployment::new(None);
    let dir = format!("{REPO}/tests/data/fhir-examples");
    let files: Vec<String> = [
        "adverseevent-example.json",
        "observation-example-bloodpressure.json",
        "observation-example-f001-glucose.json",
        "diagnosticreport-example-lipids.json",
        "diagnosticreport-example.json",
        "patient-example.json",
    ]
    .iter()
    .map(|f| format!("{dir}/{f}"))
    .collect();
    let mut args = vec!["--format", "fhir"];
    args.extend(files.iter().map(String::as_str));
    let out = ingest(&d, &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let store = d.store().await;
    let example = store.history("example").await.unwrap();
    let ae = example.adverse_events();
    assert_eq!(ae.len(), 1);
    assert!(!ae[0].serious);
    assert_eq!(ae[0].grade.map(|g| g.value()), Some(1));
    let bp = example.vitals();
    assert_eq!((bp[0].2.systolic_bp, bp[0].2.diastolic_bp), (Some(107.0), Some(60.0)));
    let pat2 = store.history("pat2").await.unwrap();
    let labs = pat2.labs();
    assert_eq!(labs.len(), 4 + 17);
    let outside = labs
        .iter()
        .filter(|(_, _, l)| l.high.is_some_and(|h| l.value > h) || l.low.is_some_and(|lo| l.value < lo))
        .count();
    assert_eq!(outside, 3 + 7, "lipids 3 of 4, blood count 7 of 17 outside their reference range");
    let everything = store.all_histories().await.unwrap();
    let text =
        serde_json::to_string(&everything.iter().flat_map(|h| &h.records).collect::<Vec<_>>()).unwrap();
    for personal in ["Chalmers", "1974-12-25", "Peter"] {
        assert!(!text.contains(personal), "{personal} was stored");
    }
}

#[test]
fn replay_shows_what_a_rule_change_would_do() {
    let d = Deployment::new(None);
    let out = ingest(&d, &[&format!("{REPO}/examples/infusion-reaction.ndjson")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The same rules, with the severe infusion reaction threshold raised to grade 4.
    let changed = d.path("changed-rules");
    std::fs::create_dir_all(&changed).unwrap();
    let pack = std::fs::read_to_string(format!("{REPO}/rules/msc-progressive-ms.yaml")).unwrap();
    let pack = pack.replacen("grade: {at_least: 3}", "grade: {at_least: 4}", 1);
    std::fs::write(changed.join("pack.yaml"), pack).unwrap();
    let run = |rules: Option<&str>| {
        let mut args = vec!["replay", "--config", d.config.to_str().unwrap()];
        if let Some(r) = rules {
            args.extend(["--rules", r]);
        }
        let out = d.vigil(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let same = run(None);
    assert!(same.contains("0 would appear, 0 would vanish"), "{same}");
    let diff = run(Some(changed.to_str().unwrap()));
    assert!(diff.contains("- [CRITICAL] infusion-reaction-severe KS-101 (ae:AE-1, level 3)"), "{diff}");
    assert!(diff.contains("0 would appear, 1 would vanish"), "{diff}");
    // Nothing was sent or stored by the replay.
    let alerts = d.vigil(&["alerts", "list", "--config", d.config.to_str().unwrap(), "--format", "json"]);
    let before: serde_json::Value = serde_json::from_slice(&alerts.stdout).unwrap();
    assert!(before.as_array().unwrap().iter().any(|a| a["rule_id"] == "infusion-reaction-severe"));
}

//! The fast path changes how much work is grouped, never what is found (and critical mail
//! is not held back by a backlog): the same records
//! stored and evaluated in one batch, or one at a time with an evaluation after each (as a
//! slow drop folder delivers them), leave the same alerts in force and the same cohort
//! totals, on SQLite and on PostgreSQL's code path alike (the statements are shared).

mod common;

use std::collections::BTreeSet;
use vigil::evaluate::Evaluator;
use vigil::ingest::native;
use vigil::store::Store;

/// A cohort with something for most shipped rules: infusion reactions, serious related
/// events, EDSS worsening, new T2 lesions, liver values, fever.
fn records() -> Vec<String> {
    let mut lines: Vec<String> =
        include_str!("../examples/infusion-reaction.ndjson").lines().map(str::to_string).collect();
    for s in 0..40 {
        for v in 0..6 {
            let date = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + chrono::Duration::days(28 * v);
            let dose =
                if v == 0 { format!(r#""doses":[{{"start":"{date}T09:00:00Z"}}],"#) } else { String::new() };
            let grade = if s % 7 == 3 && v == 1 { 3 } else { 1 };
            let serious = s % 11 == 5 && v == 2;
            let edss = 3.0 + if s % 3 == 0 { v as f64 * 0.5 } else { 0.0 };
            let t2 = u32::from(s % 5 == 1 && v == 3);
            let alt = if s % 9 == 4 && v >= 2 { 200 } else { 25 };
            let temp = if s % 13 == 6 && v == 0 { 39.1 } else { 36.8 };
            lines.push(format!(
                concat!(
                    r#"{{"subject":"B-{s:03}","site":"S{site}","arm":"A","visit":"V{v}","date":"{date}","record_id":"B-{s}-{v}",{dose}"#,
                    r#""adverse_events":[{{"id":"AE-{s}-{v}","term":"Infusion related reaction","grade":{grade},"serious":{serious},"#,
                    r#""related":"possible","onset":"{date}T10:00:00Z","awareness":"{date}T12:00:00Z"}}],"#,
                    r#""vitals":[{{"time":"{date}T10:30:00Z","temperature_c":{temp}}}],"#,
                    r#""labs":[{{"test":"ALT","value":{alt},"high":40,"time":"{date}T08:00:00Z"}},{{"test":"BILI","value":0.5,"high":1.2,"time":"{date}T08:00:00Z"}}],"#,
                    r#""scores":[{{"name":"EDSS","value":{edss:.1}}}],"mri":{{"date":"{date}","t2_new_or_enlarging":{t2},"gd_enhancing":0}}}}"#
                ),
                s = s,
                site = s % 3,
                v = v,
                date = date,
                dose = dose,
                grade = grade,
                serious = serious,
                temp = temp,
                alt = alt,
                edss = edss,
                t2 = t2,
            ));
        }
    }
    lines
}

async fn evaluator(dir: &std::path::Path, name: &str) -> (Evaluator, common::TestDatabase) {
    let db = common::TestDatabase::new(dir, name);
    let store = Store::connect(&db.url).await.unwrap();
    let rules = vigil::rules::load_rules(&[concat!(env!("CARGO_MANIFEST_DIR"), "/rules").into()]).unwrap();
    // A fixed evaluation time, so time-driven rules see the same clock in both runs.
    let clock = vigil::clock::Clock::manual("2024-08-01T00:00:00Z".parse().unwrap());
    (Evaluator::unrouted(store, rules, clock), db)
}

/// The alerts in force as (rule, subject, episode), and each cohort rule's totals.
async fn outcome(e: &Evaluator) -> (BTreeSet<(String, String, String)>, Vec<(String, i64, i64, i64)>) {
    let alerts = e.store.alerts().await.unwrap();
    let in_force = alerts
        .iter()
        .filter(|a| a.status.as_str() != "resolved")
        .map(|a| (a.rule_id.clone(), a.subject.clone(), a.episode.clone()))
        .collect();
    let mut totals = Vec::new();
    for rule in e.rules.rules.iter().filter(|r| r.kind.is_cohort()) {
        let t = e.store.cohort_totals(&rule.id).await.unwrap();
        totals.push((rule.id.clone(), t.evaluable, t.matching, t.events));
    }
    (in_force, totals)
}

#[tokio::test]
async fn one_batch_and_one_record_at_a_time_leave_the_same_alerts_and_totals() {
    let dir = tempfile::tempdir().unwrap();
    let lines = records();

    let (batch, _batch_db) = evaluator(dir.path(), "batch").await;
    let parsed = native::parse("cohort.ndjson", &lines.join("\n"));
    assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
    batch.store.store_batch(&parsed.records, &parsed.rejected).await.unwrap();
    batch.evaluate_pending().await.unwrap();

    let (single, _single_db) = evaluator(dir.path(), "single").await;
    for line in &lines {
        let parsed = native::parse("one.ndjson", line);
        single.store.store_batch(&parsed.records, &parsed.rejected).await.unwrap();
        single.evaluate_pending().await.unwrap();
    }

    let (batch_alerts, batch_totals) = outcome(&batch).await;
    let (single_alerts, single_totals) = outcome(&single).await;
    // Enough fired for the comparison to mean something: several rules and subjects.
    let rules: BTreeSet<&str> = batch_alerts.iter().map(|(r, _, _)| r.as_str()).collect();
    assert!(rules.len() >= 5 && batch_alerts.len() >= 40, "{rules:?}, {} alerts", batch_alerts.len());
    assert!(batch_totals.iter().any(|(_, evaluable, _, _)| *evaluable > 0), "{batch_totals:?}");
    assert_eq!(batch_alerts, single_alerts);
    assert_eq!(batch_totals, single_totals);
}

#[tokio::test]
async fn a_critical_alert_is_mailed_before_a_backlog_of_older_routine_mail() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::TestDatabase::new(dir.path(), "outbox");
    let store = Store::connect(&db.url).await.unwrap();
    let so = vigil::store::Recipient {
        role: "safety-officer".into(),
        address: "so@trial.test".into(),
        blinded: true,
    };
    // 30 routine alerts, due from the epoch on; then one critical, due a minute later.
    let mut alerts = Vec::new();
    for i in 0..30 {
        let mut a = common_alert(&so, vigil::rules::Severity::Warning, i);
        a.delivery.notify_at = chrono::DateTime::UNIX_EPOCH + chrono::Duration::seconds(i);
        alerts.push(a);
    }
    let mut critical = common_alert(&so, vigil::rules::Severity::Critical, 99);
    critical.delivery.notify_at = chrono::DateTime::UNIX_EPOCH + chrono::Duration::minutes(1);
    alerts.push(critical);
    let e = vigil::store::Evaluation { subject: "KS-101", alerts, ..Default::default() };
    assert_eq!(store.commit_evaluation(e, "test").await.unwrap().len(), 31);
    let first = store.due_notifications(5).await.unwrap();
    let about: Vec<i64> = first
        .iter()
        .filter_map(|n| match n.about {
            vigil::store::Notice::Alert(id) => Some(id),
            vigil::store::Notice::Report(_) => None,
        })
        .collect();
    let critical_id =
        store.alerts().await.unwrap().iter().find(|a| a.episode == "ae:99").map(|a| a.id).unwrap();
    assert_eq!(about[0], critical_id, "{about:?}");
}

fn common_alert(
    to: &vigil::store::Recipient,
    severity: vigil::rules::Severity,
    n: i64,
) -> vigil::store::NewAlert {
    vigil::store::NewAlert {
        rule_id: format!("rule-{n}"),
        rule_version: "v1".into(),
        subject: "KS-101".into(),
        site: None,
        episode: format!("ae:{n}"),
        level: 1,
        severity,
        title: "AE".into(),
        summary: "AE".into(),
        evidence: serde_json::json!({}),
        recipients: vec![to.clone()],
        clinical_time: None,
        delivery: vigil::store::FirstNotice {
            notify_at: chrono::DateTime::UNIX_EPOCH,
            group: format!("rule:{n}"),
            escalate_at: None,
        },
    }
}

/// A restart with a backlog of 1,500 subjects pending (several chunks): a critical record that
/// arrives meanwhile is stored and evaluated after the first chunk, not after the whole
/// backlog (its alert comes before the alerts of the later chunks).
#[tokio::test]
async fn a_critical_file_is_not_held_behind_a_long_backlog() {
    let d = common::Deployment::new(None);
    let vigil = common::InProcess::build(&d).await;
    // The backlog: each subject has a grade 2 infusion reaction (an alert each), stored and
    // not yet evaluated, as a crash leaves it.
    let backlog: String = (0..1_500)
        .map(|s| {
            format!(
                concat!(
                    r#"{{"subject":"Q-{s:04}","site":"KS","visit":"H2","record_id":"q{s}","doses":[{{"start":"2024-01-01T09:00:00Z"}}],"#,
                    r#""adverse_events":[{{"id":"AE-1","term":"Infusion related reaction","grade":2,"onset":"2024-01-01T09:30:00Z"}}]}}"#,
                    "\n"
                ),
                s = s
            )
        })
        .collect();
    let batch = native::parse("backlog.ndjson", &backlog);
    vigil.app.store.store_batch(&batch.records, &batch.rejected).await.unwrap();
    assert_eq!(vigil.app.store.pending_subjects().await.unwrap().len(), 1_500);
    // The critical record arrives in the drop folder while the backlog waits.
    d.drop_file(
        "critical.ndjson",
        concat!(
            r#"{"subject":"KS-999","site":"KS","visit":"H2","record_id":"c1","doses":[{"start":"2024-01-01T09:00:00Z"}],"#,
            r#""adverse_events":[{"id":"AE-1","term":"Infusion related reaction","grade":4,"onset":"2024-01-01T09:20:00Z"}]}"#,
            "\n"
        ),
    );
    vigil.app.evaluate().await.unwrap();
    let alerts = vigil.app.store.alerts().await.unwrap();
    let critical =
        alerts.iter().find(|a| a.subject == "KS-999" && a.rule_id == "infusion-reaction-severe").unwrap();
    let backlog_alerts: Vec<i64> =
        alerts.iter().filter(|a| a.subject.starts_with("Q-")).map(|a| a.id).collect();
    let before = backlog_alerts.iter().filter(|id| **id < critical.id).count();
    let after = backlog_alerts.len() - before;
    // Taken after the first chunk of the backlog, long before its end.
    assert!(
        before > 0 && after > 2 * before,
        "evaluated after the first chunk: {before} before, {after} after"
    );
    assert!(d.processed("critical.ndjson"), "filed away");
}

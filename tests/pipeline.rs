//! Black-box tests of the whole pipeline: the real `vigil` binary, a temporary SQLite
//! database, files dropped into the inbox, and a real SMTP server receiving the mail.

mod common;

use common::{wait_for, Deployment, SmtpServer};
use std::time::Duration;

const ARM: &str = "MSC-HIGH-DOSE";

fn infusion_reaction_file() -> String {
    [
        format!(
            r#"{{"subject":"KS-101","site":"KS","arm":"{ARM}","visit":"BL","date":"2019-02-26","record_id":"ks101-bl","doses":[{{"start":"2019-02-26T09:10:00+01:00","end":"2019-02-26T09:40:00+01:00","product":"autologous BM-MSC","amount":1.6e6,"unit":"cells/kg"}}],"scores":[{{"name":"EDSS","value":4.5}}]}}"#
        ),
        format!(
            r#"{{"subject":"KS-101","site":"KS","arm":"{ARM}","visit":"H2","date":"2019-02-26","record_id":"ks101-h2","adverse_events":[{{"id":"AE-1","term":"Infusion related reaction","onset":"2019-02-26T09:35:00+01:00","grade":3,"serious":false,"related":"probable"}}],"vitals":[{{"time":"2019-02-26T11:10:00+01:00","systolic_bp":84,"temperature_c":39.4,"spo2":91}}]}}"#
        ),
    ]
    .join("\n")
}

async fn settled(d: &Deployment) {
    let store = d.store().await;
    wait_for("the outbox to settle", Duration::from_secs(20), || {
        let n = notifications(&store);
        n.iter().all(|n| n.status != "pending").then_some(())
    });
    store.close().await;
}

/// Reads the outbox from inside a synchronous wait loop.
fn notifications(store: &vigil::store::Store) -> Vec<vigil::store::NotificationRow> {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(store.notifications()))
        .expect("read the outbox")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_severe_infusion_reaction_is_emailed_once_and_never_again() {
    let smtp = SmtpServer::start();
    let d = Deployment::new(Some(&smtp.url()));
    let daemon = d.start();

    d.drop_file("h2.ndjson", &infusion_reaction_file());
    // infusion-reaction-severe → safety officer + medical monitor (other shipped rules fire
    // too: fever, hypotension, hypoxia, the stopping rules; they are not counted here).
    let severe = |mail: &[common::Email]| -> Vec<common::Email> {
        mail.iter().filter(|m| m.subject.contains("(rule infusion-reaction-severe)")).cloned().collect()
    };
    let mail = wait_for("the critical emails", Duration::from_secs(20), || {
        let m = smtp.messages();
        (severe(&m).len() >= 2).then_some(m)
    });
    let critical = severe(&mail);
    assert_eq!(critical.len(), 2, "{:#?}", mail.iter().map(|m| &m.subject).collect::<Vec<_>>());
    let mut to: Vec<&str> = critical.iter().map(|m| m.rcpt_to.as_str()).collect();
    to.sort();
    assert_eq!(to, ["mm@trial.test", "so@trial.test"]);
    let m = &critical[0];
    assert!(
        m.subject.starts_with("[vigil][CRITICAL] KS-101 — Grade 3 or higher infusion-related reaction"),
        "{}",
        m.subject
    );
    assert!(m.body.contains("Subject KS-101 (site KS)"), "{}", m.body);
    assert!(m.body.contains("CTCAE grade 3"), "{}", m.body);
    assert!(m.body.contains("25 min after the start of dose 1"), "{}", m.body);
    assert!(m.body.contains("Why this fired: grade 3 >= 3"), "{}", m.body);
    assert!(m.message_id.starts_with("<vigil.alert-"), "{}", m.message_id);
    settled(&d).await;
    let total = smtp.messages();
    for m in &total {
        assert!(!m.raw.contains(ARM) && !m.raw.to_lowercase().contains("\"arm\""), "arm leaked: {}", m.raw);
    }

    // The same file again, under its own name and another: nothing new.
    d.drop_file("h2.ndjson", &infusion_reaction_file());
    d.drop_file("h2-copy.ndjson", &infusion_reaction_file());
    wait_for("both copies to be processed", Duration::from_secs(20), || {
        (d.processed_count() == 3).then_some(())
    });
    settled(&d).await;
    assert_eq!(smtp.messages().len(), total.len());

    // A crash and a restart send nothing again.
    let store = d.store().await;
    let alerts_before = store.alerts().await.unwrap().len();
    daemon.kill();
    let daemon = d.start();
    d.drop_file("other.ndjson", r#"{"subject":"KS-102","site":"KS","visit":"BL","date":"2019-03-01"}"#);
    wait_for("the next file", Duration::from_secs(20), || d.processed("other.ndjson").then_some(()));
    settled(&d).await;
    assert_eq!(smtp.messages().len(), total.len());
    assert_eq!(store.alerts().await.unwrap().len(), alerts_before);
    assert_eq!(store.record_count().await.unwrap(), 3);
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_are_quarantined_with_reasons_while_good_lines_are_stored() {
    let d = Deployment::new(None);
    let _daemon = d.start();
    let file = [
        r#"{"subject":"KS-201","site":"KS","visit":"BL","date":"2019-02-01","scores":[{"name":"EDSS","value":3.5}]}"#,
        r#"{"subject":"KS-202","site":"KS","adverse_events":[{"term":"Headache","grade":7}]}"#,
        r#"{"subject":"KS-203","site":"KS","visit":"BL","date":"2019-02-02"}"#,
        r#"{"subject":"KS-204","date":"2019-02-30"}"#,
        r#"{"subject":"KS-205","visit":"BL","date":"2019-02-03","scores":[{"name":"EDSS","value":0.5}]}"#,
        r#"{"site":"KS","visit":"BL"}"#,
        r#"this is not json"#,
        r#"{"subject":"KS-206","site":"KS","visit":"BL","date":"2019-02-04"}"#,
    ]
    .join("\n");
    d.drop_file("mixed.ndjson", &file);
    wait_for("the file to be processed", Duration::from_secs(20), || {
        d.processed("mixed.ndjson").then_some(())
    });

    let store = d.store().await;
    assert_eq!(store.record_count().await.unwrap(), 3);
    assert_eq!(store.quarantine_count().await.unwrap(), 5);
    let q = d.quarantine_files();
    assert_eq!(q.len(), 1, "{q:?}");
    let reasons: Vec<String> = q[0]
        .1
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["reason"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(reasons.len(), 5);
    assert!(reasons[0].starts_with("mixed.ndjson:2: adverse_events[0].grade: CTCAE grade 7"), "{reasons:?}");
    assert!(reasons[1].starts_with("mixed.ndjson:4: date:"), "{reasons:?}");
    assert!(
        reasons[2].starts_with("mixed.ndjson:5: scores[0].value: EDSS 0.5 does not exist"),
        "{reasons:?}"
    );
    assert!(reasons[3].starts_with("mixed.ndjson:6: subject: missing"), "{reasons:?}");
    assert!(reasons[4].starts_with("mixed.ndjson:7: record: not JSON"), "{reasons:?}");
    // Each quarantined line is kept whole.
    assert!(q[0].1.contains("this is not json"));

    // The daemon goes on.
    d.drop_file("next.json", r#"{"subject":"KS-207","visit":"BL","date":"2019-02-05"}"#);
    wait_for("the next file", Duration::from_secs(20), || d.processed("next.json").then_some(()));
    assert_eq!(store.record_count().await.unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_dropped_while_down_are_taken_at_start_and_a_worse_grade_alerts_again() {
    let rules = format!("{}/tests/fixtures/rules/infusion.yaml", common::REPO);
    let d = Deployment::with_rules(None, "", &rules);
    let grade = |g: u8, rid: &str| {
        format!(
            "{{\"subject\":\"KS-301\",\"site\":\"KS\",\"record_id\":\"{rid}\",\"doses\":[{{\"start\":\"2019-04-01T10:00:00Z\"}}],\
             \"adverse_events\":[{{\"id\":\"AE-7\",\"term\":\"Infusion related reaction\",\"grade\":{g},\"onset\":\"2019-04-01T12:00:00Z\"}}]}}"
        )
    };
    // Nothing is running: the file waits in the inbox.
    d.drop_file("g2.json", &grade(2, "r1"));
    let daemon = d.start();
    wait_for("the waiting file", Duration::from_secs(20), || d.processed("g2.json").then_some(()));
    let eml = || std::fs::read_dir(d.path("outbox")).map(|r| r.count()).unwrap_or(0);
    wait_for("one email", Duration::from_secs(20), || (eml() == 1).then_some(()));

    // The same event (same AE id) reported again at grade 3: a new version and a new alert.
    d.drop_file("g3.json", &grade(3, "r2"));
    wait_for("the critical emails", Duration::from_secs(20), || (eml() == 4).then_some(()));
    let store = d.store().await;
    assert_eq!(store.adverse_event_versions("KS-301", "AE-7").await.unwrap(), 2);
    let alerts = store.alerts().await.unwrap();
    let mut levels: Vec<(String, i64)> = alerts.iter().map(|a| (a.rule_id.clone(), a.level)).collect();
    levels.sort();
    assert_eq!(
        levels,
        [
            ("infusion-reaction-any".to_string(), 2),
            ("infusion-reaction-any".to_string(), 3),
            ("infusion-reaction-severe".to_string(), 3)
        ]
    );
    // Grade 2 again (an improvement) raises nothing.
    d.drop_file("g2-again.json", &grade(2, "r3"));
    wait_for("the improvement", Duration::from_secs(20), || d.processed("g2-again.json").then_some(()));
    settled(&d).await;
    assert_eq!(eml(), 4);
    assert_eq!(store.adverse_event_versions("KS-301", "AE-7").await.unwrap(), 3);
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_waits_while_the_smtp_server_is_down_then_goes_exactly_once() {
    let port = common::free_port();
    let rules = format!("{}/tests/fixtures/rules/infusion.yaml", common::REPO);
    let d = Deployment::with_rules(Some(&format!("smtp://127.0.0.1:{port}")), "", &rules);
    let _daemon = d.start();
    d.drop_file("h2.ndjson", &infusion_reaction_file());
    let store = d.store().await;
    wait_for("failed attempts while the server is down", Duration::from_secs(20), || {
        let n = notifications(&store);
        (n.len() == 3 && n.iter().all(|n| n.attempts >= 2 && n.status == "pending")).then_some(())
    });
    let smtp = SmtpServer::start_on(port);
    let mail = smtp.wait_for_messages(3, Duration::from_secs(20));
    assert_eq!(mail.len(), 3);
    settled(&d).await;
    assert!(notifications(&store).iter().all(|n| n.status == "sent"));
    assert_eq!(smtp.messages().len(), 3);
}

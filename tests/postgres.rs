//! The store on PostgreSQL: the same code path as SQLite, against the server on
//! 127.0.0.1:5432 (override with VIGIL_TEST_POSTGRES_URL). Each test makes its own database.

use sqlx::Connection;
use vigil::ingest::native;
use vigil::store::{Evaluation, FirstNotice, NewAlert, Recipient, StillFiring, Store};

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

async fn fresh_database() -> (String, String) {
    let admin = std::env::var("VIGIL_TEST_POSTGRES_URL").unwrap_or_else(|_| ADMIN_URL.to_string());
    let name = format!(
        "vigil_test_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    );
    let mut conn =
        sqlx::PgConnection::connect(&admin).await.expect("PostgreSQL at 127.0.0.1:5432 (see .ci/run)");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
    (format!("{base}/{name}"), name)
}

async fn drop_database(name: &str) {
    let admin = std::env::var("VIGIL_TEST_POSTGRES_URL").unwrap_or_else(|_| ADMIN_URL.to_string());
    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
            .execute(&mut conn)
            .await;
    }
}

#[tokio::test]
async fn records_alerts_and_the_outbox_work_on_postgresql() {
    let (url, name) = fresh_database().await;
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend(), vigil::store::Backend::Postgres);

    let text = concat!(
        "{\"subject\":\"KS-101\",\"site\":\"KS\",\"record_id\":\"a\",\"adverse_events\":[{\"id\":\"AE-1\",\"term\":\"Rash\",\"grade\":2}]}\n",
        "{\"subject\":\"KS-101\",\"site\":\"KS\",\"record_id\":\"b\",\"adverse_events\":[{\"id\":\"AE-1\",\"term\":\"Rash\",\"grade\":3}]}\n",
        "{\"subject\":\"KS-102\",\"date\":\"2019-02-01\"}\n",
        "{\"subject\":\"KS-103\",\"adverse_events\":[{\"term\":\"Rash\",\"grade\":0}]}\n",
    );
    let parsed = native::parse("pg.ndjson", text);
    let first = store.store_batch(&parsed.records, &parsed.rejected).await.unwrap();
    assert_eq!((first.stored, first.duplicates, first.quarantined), (3, 0, 1));
    let again = store.store_batch(&parsed.records, &parsed.rejected).await.unwrap();
    assert_eq!((again.stored, again.duplicates, again.quarantined), (0, 3, 0));
    assert_eq!(store.record_count().await.unwrap(), 3);
    assert_eq!(store.adverse_event_versions("KS-101", "AE-1").await.unwrap(), 2);

    let history = store.history("KS-101").await.unwrap();
    assert_eq!(history.adverse_events()[0].grade.unwrap().value(), 3);
    let pending = store.pending_subjects().await.unwrap();
    assert_eq!(pending.len(), 2);

    let so = Recipient { role: "safety-officer".into(), address: "so@trial.test".into(), blinded: true };
    let alert = |level: i64| NewAlert {
        rule_id: "ae-grade".into(),
        rule_version: "v1".into(),
        subject: "KS-101".into(),
        site: Some("KS".into()),
        episode: "ae:AE-1".into(),
        level,
        severity: vigil::rules::Severity::Warning,
        title: "AE grade".into(),
        summary: "Rash grade".into(),
        evidence: serde_json::json!({"why": "test"}),
        recipients: vec![so.clone()],
        delivery: FirstNotice {
            notify_at: chrono::DateTime::UNIX_EPOCH,
            group: "rule:ae-grade".into(),
            escalate_at: Some(chrono::DateTime::UNIX_EPOCH),
        },
    };
    let (subject, seq) = pending.iter().find(|(s, _)| s == "KS-101").cloned().unwrap();
    fn eval(alerts: Vec<NewAlert>, pending: Option<(&str, i64)>) -> Evaluation<'_> {
        Evaluation { pending, subject: "KS-101", alerts, ..Default::default() }
    }
    let raised =
        store.commit_evaluation(eval(vec![alert(3)], Some((&subject, seq))), "trial.test").await.unwrap();
    assert_eq!(raised.len(), 1);
    // Same episode at the same or a lower level: nothing new.
    assert!(store
        .commit_evaluation(eval(vec![alert(3), alert(2)], None), "trial.test")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.commit_evaluation(eval(vec![alert(4)], None), "trial.test").await.unwrap().len(), 1);
    assert_eq!(store.pending_subjects().await.unwrap().len(), 1);

    let due = store.due_notifications(10).await.unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(store.pending_group(due[0].group_key.as_deref().unwrap()).await.unwrap().len(), 2);
    store.record_delivery(due[0].id, &vigil::store::Delivery::Sent).await.unwrap();
    store
        .record_delivery(due[1].id, &vigil::store::Delivery::Failed { error: "550 no such user".into() })
        .await
        .unwrap();
    let all = store.notifications().await.unwrap();
    assert_eq!(all.iter().map(|n| n.status.as_str()).collect::<Vec<_>>(), ["sent", "failed"]);
    assert_eq!(all[1].last_error.as_deref(), Some("550 no such user"));
    assert!(store.due_notifications(10).await.unwrap().is_empty());

    // The lifecycle on PostgreSQL: escalation, acknowledgement, silences, resolution.
    let due = store.due_escalations().await.unwrap();
    assert_eq!(due.len(), 2);
    assert!(store.escalate(&due[0], std::slice::from_ref(&so), None, "trial.test").await.unwrap());
    assert!(
        !store.escalate(&due[0], std::slice::from_ref(&so), None, "trial.test").await.unwrap(),
        "a step escalates once"
    );
    let acked = store
        .transition(due[1].id, vigil::alerts::Transition::Acknowledge, "dr.who", Some("on it"))
        .await
        .unwrap();
    assert_eq!(acked.status, "acknowledged");
    assert!(store
        .transition(due[1].id, vigil::alerts::Transition::Acknowledge, "dr.who", None)
        .await
        .is_err());
    assert!(store.due_escalations().await.unwrap().is_empty());
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    let sid =
        store.create_silence(Some("ae-grade"), None, None, past, "dr.who", "known issue").await.unwrap();
    assert_eq!(store.alert(due[0].id).await.unwrap().unwrap().status, "silenced");
    let reopened = store.expire_silences().await.unwrap();
    assert!(reopened.is_empty(), "its notice was sent before the silence");
    assert_eq!(store.alert(due[0].id).await.unwrap().unwrap().status, "open");
    assert!(store.silences().await.unwrap().iter().any(|s| s.id == sid && s.ended));
    let resolve = Evaluation {
        subject: "KS-101",
        still_firing: vec![StillFiring {
            rule_id: "ae-grade".into(),
            episodes: vec![],
            resolved_notice: vec![so],
        }],
        ..Default::default()
    };
    store.commit_evaluation(resolve, "trial.test").await.unwrap();
    assert!(store.alerts().await.unwrap().iter().all(|a| a.status == "resolved"));
    let events = store.alert_events(due[1].id).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["raised", "acknowledged", "resolved"]);
    assert_eq!(events[1].actor, "dr.who");

    store.close().await;
    drop_database(&name).await;
}

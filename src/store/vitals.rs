//! What an operator watches: counts and ages read from the store, for `/readyz` and
//! `/metrics`. Every number is a query over the tables, so it holds across restarts and
//! replicas alike.

use super::Store;
use sqlx::Row;

/// The store's vital signs at one moment.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Vitals {
    pub records: i64,
    pub quarantined: i64,
    /// Subjects with records not yet evaluated.
    pub pending_evaluations: i64,
    /// (severity, status, count) of the alerts.
    pub alerts: Vec<(String, String, i64)>,
    /// (kind, status, count) of the notifications.
    pub notifications: Vec<(String, String, i64)>,
    /// Age in seconds of the oldest notification not yet delivered (0: none).
    pub oldest_pending_notification_seconds: i64,
    /// Age in seconds of the oldest undelivered notification of a critical alert (0: none).
    pub oldest_pending_critical_seconds: i64,
    /// Notifications that failed for good (a safety email that did not go out).
    pub failed_notifications: i64,
    /// Escalation steps taken, ever (one `escalated` event each).
    pub escalations: i64,
}

impl Store {
    pub async fn vitals(&self) -> anyhow::Result<Vitals> {
        let count = |sql: &'static str| async move {
            anyhow::Ok(sqlx::query(sql).fetch_one(&self.pool).await?.try_get::<i64, _>("n")?)
        };
        let now = self.now_ms();
        let age = |oldest: Option<i64>| oldest.map_or(0, |t| ((now - t) / 1000).max(0));
        let triples = |sql: &'static str| async move {
            let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
            rows.iter()
                .map(|r| anyhow::Ok((r.try_get("a")?, r.try_get("b")?, r.try_get("n")?)))
                .collect::<anyhow::Result<Vec<(String, String, i64)>>>()
        };
        let oldest: Option<i64> =
            sqlx::query("SELECT MIN(created_at) AS t FROM notifications WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await?
                .try_get("t")?;
        let oldest_critical: Option<i64> = sqlx::query(
            "SELECT MIN(n.created_at) AS t FROM notifications n JOIN alerts a ON a.id = n.alert_id \
             WHERE n.status = 'pending' AND a.severity = 'critical'",
        )
        .fetch_one(&self.pool)
        .await?
        .try_get("t")?;
        Ok(Vitals {
            records: count("SELECT COUNT(*) AS n FROM records").await?,
            quarantined: count("SELECT COUNT(*) AS n FROM quarantine").await?,
            pending_evaluations: count("SELECT COUNT(*) AS n FROM pending_evaluation").await?,
            alerts: triples("SELECT severity AS a, status AS b, COUNT(*) AS n FROM alerts GROUP BY severity, status ORDER BY a, b").await?,
            notifications: triples("SELECT kind AS a, status AS b, COUNT(*) AS n FROM notifications GROUP BY kind, status ORDER BY a, b").await?,
            oldest_pending_notification_seconds: age(oldest),
            oldest_pending_critical_seconds: age(oldest_critical),
            failed_notifications: count("SELECT COUNT(*) AS n FROM notifications WHERE status = 'failed'").await?,
            escalations: count("SELECT COUNT(*) AS n FROM alert_events WHERE action = 'escalated'").await?,
        })
    }
}

impl Vitals {
    /// The Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut typed = |name: &str, kind: &str, help: &str, samples: &[(String, i64)]| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, v) in samples {
                out.push_str(&format!("{name}{labels} {v}\n"));
            }
        };
        let plain = |v: i64| vec![(String::new(), v)];
        // A count of events in the store only grows: a counter, whatever the restarts.
        typed(
            "vigil_escalations_total",
            "counter",
            "Escalation steps taken (alert_events with action escalated).",
            &plain(self.escalations),
        );
        let mut metric =
            |name: &str, help: &str, samples: &[(String, i64)]| typed(name, "gauge", help, samples);
        metric("vigil_records", "Records stored.", &plain(self.records));
        metric("vigil_quarantined_records", "Lines quarantined with their reason.", &plain(self.quarantined));
        metric(
            "vigil_pending_evaluations",
            "Subjects with records not yet evaluated.",
            &plain(self.pending_evaluations),
        );
        let labelled = |rows: &[(String, String, i64)], a: &str, b: &str| -> Vec<(String, i64)> {
            rows.iter()
                .map(|(x, y, n)| (format!("{{{a}=\"{}\",{b}=\"{}\"}}", label(x), label(y)), *n))
                .collect()
        };
        metric(
            "vigil_alerts",
            "Alerts by severity and state.",
            &labelled(&self.alerts, "severity", "status"),
        );
        metric(
            "vigil_notifications",
            "Notifications by kind and delivery status.",
            &labelled(&self.notifications, "kind", "status"),
        );
        metric(
            "vigil_oldest_pending_notification_seconds",
            "Age of the oldest notification not yet delivered (0: none).",
            &plain(self.oldest_pending_notification_seconds),
        );
        metric(
            "vigil_oldest_pending_critical_notification_seconds",
            "Age of the oldest undelivered notification of a critical alert (0: none).",
            &plain(self.oldest_pending_critical_seconds),
        );
        metric(
            "vigil_failed_notifications",
            "Notifications that failed for good.",
            &plain(self.failed_notifications),
        );
        out
    }
}

/// A label value as the exposition format wants it.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use crate::alerts::{FirstNotice, NewAlert, Recipient};
    use crate::store::{Evaluation, Store};

    #[tokio::test]
    async fn an_escalation_step_is_counted_and_exposed_as_a_counter() {
        let db = crate::store::testing::TestDb::new();
        let store = Store::connect(&db.url).await.unwrap();
        let so = Recipient { role: "safety-officer".into(), address: "so@trial.test".into(), blinded: true };
        let alert = NewAlert {
            rule_id: "ae-grade".into(),
            rule_version: "v1".into(),
            subject: "KS-101".into(),
            site: Some("KS".into()),
            episode: "ae:AE-1".into(),
            level: 3,
            severity: crate::rules::Severity::Warning,
            title: "AE grade".into(),
            summary: "Rash grade 3".into(),
            evidence: serde_json::json!({}),
            clinical_time: None,
            recipients: vec![so.clone()],
            delivery: FirstNotice {
                notify_at: chrono::DateTime::UNIX_EPOCH,
                group: "rule:ae-grade".into(),
                escalate_at: Some(chrono::DateTime::UNIX_EPOCH),
            },
        };
        let evaluation = Evaluation { subject: "KS-101", alerts: vec![alert], ..Default::default() };
        let ids = store.commit_evaluation(evaluation, "trial.test").await.unwrap();
        assert_eq!(store.vitals().await.unwrap().escalations, 0);
        let row = store.alert(ids[0]).await.unwrap().unwrap();
        assert!(store.escalate(&row, &[so], None, "trial.test").await.unwrap());
        let v = store.vitals().await.unwrap();
        assert_eq!(v.escalations, 1);
        assert!(v
            .prometheus()
            .contains("# TYPE vigil_escalations_total counter\nvigil_escalations_total 1\n"));
    }
}

//! Alerts: raised once per (rule, subject, episode) and level, with their outbox rows.

use super::{now_ms, opt_text, to_time, Store};
use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

/// An alert to raise, and who must hear of it.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub rule_id: String,
    pub rule_version: String,
    /// Empty for cohort-level alerts.
    pub subject: String,
    pub site: Option<String>,
    /// What makes two findings the same event (an AE id, a scan date, a worsening onset).
    pub episode: String,
    /// Higher = worse (CTCAE grade, lesion count, confirmed > unconfirmed); a finding at a
    /// higher level than any earlier alert of the episode raises a new alert.
    pub level: i64,
    pub severity: String,
    pub title: String,
    pub summary: String,
    pub evidence: serde_json::Value,
    /// (role, address, blinded)
    pub recipients: Vec<(String, String, bool)>,
}

/// A subject's part in a cohort rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CohortContribution {
    pub rule_id: String,
    pub evaluable: bool,
    pub matching: bool,
    pub events: i64,
}

/// A cohort rule's totals over every subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CohortTotals {
    pub evaluable: i64,
    pub matching: i64,
    pub events: i64,
    pub subjects: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertRow {
    pub id: i64,
    pub rule_id: String,
    pub rule_version: String,
    pub subject: String,
    pub site: Option<String>,
    pub episode: String,
    pub level: i64,
    pub severity: String,
    pub title: String,
    pub summary: String,
    pub evidence: serde_json::Value,
    pub status: String,
    pub raised_at: DateTime<Utc>,
}

/// A SELECT over every alert column; the tail (WHERE/ORDER) must be a literal.
macro_rules! select_alerts {
    ($tail:literal) => {
        concat!(
            "SELECT id, rule_id, rule_version, subject, site, episode, level, severity, title, summary, \
             evidence, status, raised_at FROM alerts ",
            $tail
        )
    };
}

fn alert_row(r: &sqlx::any::AnyRow) -> anyhow::Result<AlertRow> {
    let evidence: String = r.try_get("evidence")?;
    Ok(AlertRow {
        id: r.try_get("id")?,
        rule_id: r.try_get("rule_id")?,
        rule_version: r.try_get("rule_version")?,
        subject: r.try_get("subject")?,
        site: opt_text(r, "site"),
        episode: r.try_get("episode")?,
        level: r.try_get("level")?,
        severity: r.try_get("severity")?,
        title: r.try_get("title")?,
        summary: r.try_get("summary")?,
        evidence: serde_json::from_str(&evidence).unwrap_or(serde_json::Value::Null),
        status: r.try_get("status")?,
        raised_at: to_time(r.try_get("raised_at")?),
    })
}

impl Store {
    /// Records one evaluation of a subject in a single transaction: the alerts not raised
    /// before, their outbox rows, and the end of the subject's pending evaluation (up to
    /// the record seq the evaluation saw). Returns the ids of the new alerts.
    pub async fn commit_evaluation(
        &self,
        subject: Option<(&str, i64)>,
        alerts: &[NewAlert],
        contributions: &[CohortContribution],
        message_domain: &str,
    ) -> anyhow::Result<Vec<i64>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await.context("cannot start a transaction")?;
        if let Some((subject, _)) = subject {
            for c in contributions {
                sqlx::query(
                    "INSERT INTO cohort_contributions (rule_id, subject, evaluable, matching, events) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (rule_id, subject) DO UPDATE SET \
                     evaluable = excluded.evaluable, matching = excluded.matching, events = excluded.events",
                )
                .bind(&c.rule_id)
                .bind(subject)
                .bind(i64::from(c.evaluable))
                .bind(i64::from(c.matching))
                .bind(c.events)
                .execute(&mut *tx)
                .await?;
            }
        }
        let mut raised = Vec::new();
        for a in alerts {
            let highest: Option<i64> = sqlx::query(
                "SELECT MAX(level) AS m FROM alerts WHERE rule_id = $1 AND subject = $2 AND episode = $3",
            )
            .bind(&a.rule_id)
            .bind(&a.subject)
            .bind(&a.episode)
            .fetch_one(&mut *tx)
            .await?
            .try_get("m")?;
            if highest.is_some_and(|h| h >= a.level) {
                continue;
            }
            let id: i64 = sqlx::query(
                "INSERT INTO alerts (rule_id, rule_version, subject, site, episode, level, severity, title, \
                 summary, evidence, status, raised_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'open', $11) RETURNING id",
            )
            .bind(&a.rule_id)
            .bind(&a.rule_version)
            .bind(&a.subject)
            .bind(a.site.as_deref())
            .bind(&a.episode)
            .bind(a.level)
            .bind(&a.severity)
            .bind(&a.title)
            .bind(&a.summary)
            .bind(a.evidence.to_string())
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .context("cannot store an alert")?
            .try_get("id")?;
            sqlx::query(
                "INSERT INTO alert_events (alert_id, at, actor, action) VALUES ($1, $2, 'vigil', 'raised')",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for (n, (role, address, blinded)) in a.recipients.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO notifications (alert_id, role, recipient, blinded, message_id, status, \
                     attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)",
                )
                .bind(id)
                .bind(role)
                .bind(address)
                .bind(i64::from(*blinded))
                .bind(format!("<vigil.alert-{id}.{n}@{message_domain}>"))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            raised.push(id);
        }
        if let Some((subject, up_to_seq)) = subject {
            sqlx::query("DELETE FROM pending_evaluation WHERE subject = $1 AND up_to_seq <= $2")
                .bind(subject)
                .bind(up_to_seq)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await.context("cannot commit the evaluation")?;
        Ok(raised)
    }

    /// The totals of one cohort rule over every subject's stored contribution.
    pub async fn cohort_totals(&self, rule_id: &str) -> anyhow::Result<CohortTotals> {
        let rows = sqlx::query(
            "SELECT subject, evaluable, matching, events FROM cohort_contributions WHERE rule_id = $1 ORDER BY subject",
        )
        .bind(rule_id)
        .fetch_all(&self.pool)
        .await?;
        let mut t = CohortTotals::default();
        for r in rows {
            t.evaluable += r.try_get::<i64, _>("evaluable")?;
            t.events += r.try_get::<i64, _>("events")?;
            if r.try_get::<i64, _>("matching")? != 0 {
                t.matching += 1;
                t.subjects.push(r.try_get("subject")?);
            }
        }
        Ok(t)
    }

    /// Every subject with at least one record.
    pub async fn subjects(&self) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT subject FROM records ORDER BY subject")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("subject")?)).collect()
    }

    pub async fn alerts(&self) -> anyhow::Result<Vec<AlertRow>> {
        let rows = sqlx::query(select_alerts!("ORDER BY id")).fetch_all(&self.pool).await?;
        rows.iter().map(alert_row).collect()
    }

    pub async fn alert(&self, id: i64) -> anyhow::Result<Option<AlertRow>> {
        let row = sqlx::query(select_alerts!("WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(alert_row).transpose()
    }
}

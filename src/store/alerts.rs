//! Alerts: raised once per (rule, subject, episode) and level, with their outbox rows;
//! their lifecycle (acknowledge, resolve, silence, escalate), every transition recorded
//! with who and when.

use super::{now_ms, opt_text, to_time, Store};
use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// Someone (a role's address) who hears of an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub role: String,
    pub address: String,
    pub blinded: bool,
}

/// How an alert's first notice goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstNotice {
    /// When the notice may go (now, after a grouping wait, or at the next digest).
    pub notify_at_ms: i64,
    /// Notices pending together under the same key (per recipient) go out as one email.
    pub group: String,
    /// When the alert escalates if nobody acknowledges it; None = no escalation.
    pub escalate_at_ms: Option<i64>,
}

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
    pub recipients: Vec<Recipient>,
    pub delivery: FirstNotice,
}

/// For one rule just evaluated for a subject: the episodes it still finds. Open alerts of
/// the rule whose episode is gone are resolved ("condition no longer present").
#[derive(Debug, Clone)]
pub struct StillFiring {
    pub rule_id: String,
    pub episodes: Vec<String>,
    /// Recipients of a resolved notice; empty = no notice.
    pub resolved_notice: Vec<Recipient>,
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

/// What one evaluation wants recorded, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Evaluation<'a> {
    /// The subject evaluated and the newest record seq the evaluation saw (clears the
    /// pending mark up to there); None for cohort judgments and clock passes.
    pub pending: Option<(&'a str, i64)>,
    /// The subject whose contributions and resolutions these are ("" for the cohort).
    pub subject: &'a str,
    pub alerts: Vec<NewAlert>,
    pub contributions: Vec<CohortContribution>,
    pub still_firing: Vec<StillFiring>,
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
    /// open, acknowledged, resolved, silenced
    pub status: String,
    pub raised_at: DateTime<Utc>,
    pub escalation_step: i64,
    pub next_escalation_at: Option<DateTime<Utc>>,
}

/// One transition of an alert.
#[derive(Debug, Clone, Serialize)]
pub struct AlertEvent {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Silence {
    pub id: i64,
    pub rule_id: Option<String>,
    pub subject: Option<String>,
    pub site: Option<String>,
    pub comment: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended: bool,
}

/// A refused transition (e.g. acknowledging a resolved alert).
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error("no alert #{0}")]
    NotFound(i64),
    #[error("alert #{id} is {status}; it cannot be {action}")]
    NotAllowed { id: i64, status: String, action: &'static str },
}

/// A SELECT over every alert column; the tail (WHERE/ORDER) must be a literal.
macro_rules! select_alerts {
    ($tail:literal) => {
        concat!(
            "SELECT id, rule_id, rule_version, subject, site, episode, level, severity, title, summary, \
             evidence, status, raised_at, escalation_step, next_escalation_at FROM alerts ",
            $tail
        )
    };
}

fn alert_row(r: &AnyRow) -> anyhow::Result<AlertRow> {
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
        escalation_step: r.try_get("escalation_step")?,
        next_escalation_at: r.try_get::<Option<i64>, _>("next_escalation_at")?.map(to_time),
    })
}

fn silence_row(r: &AnyRow) -> anyhow::Result<Silence> {
    Ok(Silence {
        id: r.try_get("id")?,
        rule_id: opt_text(r, "rule_id"),
        subject: opt_text(r, "subject"),
        site: opt_text(r, "site"),
        comment: r.try_get("comment")?,
        created_by: r.try_get("created_by")?,
        created_at: to_time(r.try_get("created_at")?),
        expires_at: to_time(r.try_get("expires_at")?),
        ended: r.try_get::<Option<i64>, _>("ended_at")?.is_some(),
    })
}

async fn event(
    tx: &mut Transaction<'_, Any>,
    alert_id: i64,
    actor: &str,
    action: &str,
    comment: Option<&str>,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO alert_events (alert_id, at, actor, action, comment) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(alert_id)
    .bind(now_ms())
    .bind(actor)
    .bind(action)
    .bind(comment)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Queues one notification per recipient.
async fn enqueue(
    tx: &mut Transaction<'_, Any>,
    alert_id: i64,
    kind: &str,
    recipients: &[Recipient],
    at_ms: i64,
    group: Option<&str>,
    message_domain: &str,
) -> anyhow::Result<()> {
    let now = now_ms();
    // Message-IDs: unique per notification, stable across retries of the same row.
    let first: i64 = sqlx::query("SELECT COUNT(*) AS n FROM notifications WHERE alert_id = $1")
        .bind(alert_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;
    for (i, r) in recipients.iter().enumerate() {
        let n = first + i as i64;
        sqlx::query(
            "INSERT INTO notifications (alert_id, role, recipient, blinded, message_id, status, attempts, \
             next_attempt_at, created_at, kind, group_key) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $7, $8, $9)",
        )
        .bind(alert_id)
        .bind(&r.role)
        .bind(&r.address)
        .bind(i64::from(r.blinded))
        .bind(format!("<vigil.alert-{alert_id}.{n}@{message_domain}>"))
        .bind(at_ms)
        .bind(now)
        .bind(kind)
        .bind(group.map(|g| format!("{g}|{}", r.address)))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The active silence matching an alert, if any.
async fn matching_silence(
    tx: &mut Transaction<'_, Any>,
    a: &NewAlert,
    now: i64,
) -> anyhow::Result<Option<i64>> {
    let row = sqlx::query(
        "SELECT id FROM silences WHERE ended_at IS NULL AND expires_at > $1 \
         AND (rule_id IS NULL OR rule_id = $2) AND (subject IS NULL OR subject = $3) \
         AND (site IS NULL OR site = $4) ORDER BY id LIMIT 1",
    )
    .bind(now)
    .bind(&a.rule_id)
    .bind(&a.subject)
    .bind(a.site.as_deref().unwrap_or(""))
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| r.try_get("id")).transpose()?)
}

impl Store {
    /// Records one evaluation in a single transaction: cohort contributions, the alerts
    /// not raised before (silenced ones stay quiet), their outbox rows, the resolution of
    /// alerts whose condition is gone, and the end of the subject's pending evaluation.
    /// Returns the ids of the new alerts.
    pub async fn commit_evaluation(
        &self,
        e: Evaluation<'_>,
        message_domain: &str,
    ) -> anyhow::Result<Vec<i64>> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        for c in &e.contributions {
            let (evaluable, matching) = (i64::from(c.evaluable), i64::from(c.matching));
            let before = sqlx::query(
                "SELECT evaluable, matching, events FROM cohort_contributions WHERE rule_id = $1 AND subject = $2",
            )
            .bind(&c.rule_id)
            .bind(e.subject)
            .fetch_optional(&mut *tx)
            .await?;
            let before: Option<(i64, i64, i64)> = match before {
                Some(r) => Some((r.try_get("evaluable")?, r.try_get("matching")?, r.try_get("events")?)),
                None => None,
            };
            if before == Some((evaluable, matching, c.events)) {
                continue;
            }
            let (e0, m0, v0) = before.unwrap_or_default();
            sqlx::query(
                "INSERT INTO cohort_contributions (rule_id, subject, evaluable, matching, events) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (rule_id, subject) DO UPDATE SET \
                 evaluable = excluded.evaluable, matching = excluded.matching, events = excluded.events",
            )
            .bind(&c.rule_id)
            .bind(e.subject)
            .bind(evaluable)
            .bind(matching)
            .bind(c.events)
            .execute(&mut *tx)
            .await?;
            // The running total moves by this subject's change only.
            sqlx::query(
                "INSERT INTO cohort_totals (rule_id, evaluable, matching, events) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (rule_id) DO UPDATE SET evaluable = cohort_totals.evaluable + excluded.evaluable, \
                 matching = cohort_totals.matching + excluded.matching, events = cohort_totals.events + excluded.events",
            )
            .bind(&c.rule_id)
            .bind(evaluable - e0)
            .bind(matching - m0)
            .bind(c.events - v0)
            .execute(&mut *tx)
            .await?;
        }
        let mut raised = Vec::new();
        for a in &e.alerts {
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
            let silence = matching_silence(&mut tx, a, now).await?;
            let id: i64 = sqlx::query(
                "INSERT INTO alerts (rule_id, rule_version, subject, site, episode, level, severity, title, \
                 summary, evidence, status, raised_at, next_escalation_at, silence_id, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $12) RETURNING id",
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
            .bind(if silence.is_some() { "silenced" } else { "open" })
            .bind(now)
            .bind(if silence.is_some() { None } else { a.delivery.escalate_at_ms })
            .bind(silence)
            .fetch_one(&mut *tx)
            .await
            .context("cannot store an alert")?
            .try_get("id")?;
            event(&mut tx, id, "vigil", "raised", None).await?;
            match silence {
                Some(s) => event(&mut tx, id, "vigil", "silenced", Some(&format!("by silence #{s}"))).await?,
                None => {
                    enqueue(
                        &mut tx,
                        id,
                        "alert",
                        &a.recipients,
                        a.delivery.notify_at_ms,
                        Some(&a.delivery.group),
                        message_domain,
                    )
                    .await?
                }
            }
            raised.push(id);
        }
        for s in &e.still_firing {
            let rows = sqlx::query(
                "SELECT id, episode FROM alerts WHERE rule_id = $1 AND subject = $2 \
                 AND status IN ('open', 'acknowledged', 'silenced')",
            )
            .bind(&s.rule_id)
            .bind(e.subject)
            .fetch_all(&mut *tx)
            .await?;
            for row in rows {
                let (id, episode): (i64, String) = (row.try_get("id")?, row.try_get("episode")?);
                if s.episodes.contains(&episode) {
                    continue;
                }
                sqlx::query(
                    "UPDATE alerts SET status = 'resolved', next_escalation_at = NULL, updated_at = $2 WHERE id = $1",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                event(&mut tx, id, "vigil", "resolved", Some("condition no longer present")).await?;
                enqueue(&mut tx, id, "resolved", &s.resolved_notice, now, None, message_domain).await?;
            }
        }
        if let Some((subject, up_to_seq)) = e.pending {
            sqlx::query("DELETE FROM pending_evaluation WHERE subject = $1 AND up_to_seq <= $2")
                .bind(subject)
                .bind(up_to_seq)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await.context("cannot commit the evaluation")?;
        Ok(raised)
    }

    /// Acknowledges (stops escalation) or resolves an alert, recording who and why.
    pub async fn transition(
        &self,
        id: i64,
        action: &'static str,
        actor: &str,
        comment: Option<&str>,
    ) -> anyhow::Result<AlertRow> {
        let mut tx = self.begin_write().await?;
        let status: String = sqlx::query("SELECT status FROM alerts WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(TransitionError::NotFound(id))?
            .try_get("status")?;
        let (allowed, to) = match action {
            "acknowledged" => (status == "open" || status == "silenced", "acknowledged"),
            "resolved" => (status != "resolved", "resolved"),
            _ => (false, ""),
        };
        if !allowed {
            return Err(TransitionError::NotAllowed { id, status, action }.into());
        }
        sqlx::query(
            "UPDATE alerts SET status = $2, next_escalation_at = NULL, updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(to)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        // Pending escalation notices are moot once someone has taken the alert.
        sqlx::query("UPDATE notifications SET status = 'cancelled' WHERE alert_id = $1 AND status = 'pending' AND kind = 'escalation'")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        event(&mut tx, id, actor, to, comment).await?;
        tx.commit().await?;
        self.alert(id).await?.ok_or_else(|| TransitionError::NotFound(id).into())
    }

    /// Alerts still open whose escalation time has come.
    pub async fn due_escalations(&self) -> anyhow::Result<Vec<AlertRow>> {
        let rows = sqlx::query(select_alerts!(
            "WHERE status = 'open' AND next_escalation_at IS NOT NULL AND next_escalation_at <= $1 ORDER BY id"
        ))
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alert_row).collect()
    }

    /// Escalates one step: notifies the next role and schedules the step after (or none).
    /// Does nothing if the alert was acknowledged or escalated meanwhile.
    pub async fn escalate(
        &self,
        alert: &AlertRow,
        recipients: &[Recipient],
        next_at_ms: Option<i64>,
        message_domain: &str,
    ) -> anyhow::Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE alerts SET escalation_step = escalation_step + 1, next_escalation_at = $3, updated_at = $4 \
             WHERE id = $1 AND status = 'open' AND escalation_step = $2",
        )
        .bind(alert.id)
        .bind(alert.escalation_step)
        .bind(next_at_ms)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let roles: Vec<&str> = recipients.iter().map(|r| r.role.as_str()).collect();
        event(&mut tx, alert.id, "vigil", "escalated", Some(&format!("to {}", roles.join(", ")))).await?;
        enqueue(&mut tx, alert.id, "escalation", recipients, now_ms(), None, message_domain).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Creates a silence; alerts already open that it matches are silenced at once.
    pub async fn create_silence(
        &self,
        rule_id: Option<&str>,
        subject: Option<&str>,
        site: Option<&str>,
        expires_at: DateTime<Utc>,
        by: &str,
        comment: &str,
    ) -> anyhow::Result<i64> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO silences (rule_id, subject, site, comment, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(rule_id)
        .bind(subject)
        .bind(site)
        .bind(comment)
        .bind(by)
        .bind(now)
        .bind(expires_at.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        let rows = sqlx::query(
            "SELECT id FROM alerts WHERE status = 'open' AND ($1 IS NULL OR rule_id = $1) \
             AND ($2 IS NULL OR subject = $2) AND ($3 IS NULL OR site = $3)",
        )
        .bind(rule_id)
        .bind(subject)
        .bind(site)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            let alert_id: i64 = row.try_get("id")?;
            sqlx::query(
                "UPDATE alerts SET status = 'silenced', silence_id = $2, next_escalation_at = NULL, updated_at = $3 \
                 WHERE id = $1",
            )
            .bind(alert_id)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE notifications SET status = 'suppressed' WHERE alert_id = $1 AND status = 'pending'",
            )
            .bind(alert_id)
            .execute(&mut *tx)
            .await?;
            event(&mut tx, alert_id, by, "silenced", Some(&format!("by silence #{id}: {comment}"))).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Ends expired silences. Alerts they silenced that are still silenced re-open; the
    /// ones whose notice never went out are returned, to be notified now.
    pub async fn expire_silences(&self) -> anyhow::Result<Vec<AlertRow>> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let expired = sqlx::query("SELECT id FROM silences WHERE ended_at IS NULL AND expires_at <= $1")
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        let mut reopened = Vec::new();
        for s in expired {
            let sid: i64 = s.try_get("id")?;
            sqlx::query("UPDATE silences SET ended_at = $2 WHERE id = $1")
                .bind(sid)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let rows = sqlx::query("SELECT id FROM alerts WHERE silence_id = $1 AND status = 'silenced'")
                .bind(sid)
                .fetch_all(&mut *tx)
                .await?;
            for row in rows {
                let id: i64 = row.try_get("id")?;
                sqlx::query("UPDATE alerts SET status = 'open', updated_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                event(&mut tx, id, "vigil", "unsilenced", Some(&format!("silence #{sid} expired"))).await?;
                let sent: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM notifications WHERE alert_id = $1 AND status = 'sent'",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
                if sent == 0 {
                    reopened.push(id);
                }
            }
        }
        tx.commit().await?;
        let mut out = Vec::new();
        for id in reopened {
            if let Some(a) = self.alert(id).await? {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Queues the first notice of an alert that had none (after its silence expired) and
    /// schedules its escalation.
    pub async fn notify_reopened(
        &self,
        alert_id: i64,
        recipients: &[Recipient],
        escalate_at_ms: Option<i64>,
        message_domain: &str,
    ) -> anyhow::Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE alerts SET next_escalation_at = $2 WHERE id = $1")
            .bind(alert_id)
            .bind(escalate_at_ms)
            .execute(&mut *tx)
            .await?;
        enqueue(&mut tx, alert_id, "alert", recipients, now_ms(), None, message_domain).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn silences(&self) -> anyhow::Result<Vec<Silence>> {
        let rows = sqlx::query(
            "SELECT id, rule_id, subject, site, comment, created_by, created_at, expires_at, ended_at \
             FROM silences ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(silence_row).collect()
    }

    pub async fn alert_events(&self, alert_id: i64) -> anyhow::Result<Vec<AlertEvent>> {
        let rows = sqlx::query(
            "SELECT at, actor, action, comment FROM alert_events WHERE alert_id = $1 ORDER BY id",
        )
        .bind(alert_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AlertEvent {
                    at: to_time(r.try_get("at")?),
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    comment: opt_text(r, "comment"),
                })
            })
            .collect()
    }

    /// The totals of one cohort rule (one row, kept up to date by each evaluation). The
    /// matching subjects are not listed here: see `cohort_matching_subjects`.
    pub async fn cohort_totals(&self, rule_id: &str) -> anyhow::Result<CohortTotals> {
        let row = sqlx::query("SELECT evaluable, matching, events FROM cohort_totals WHERE rule_id = $1")
            .bind(rule_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => CohortTotals {
                evaluable: r.try_get("evaluable")?,
                matching: r.try_get("matching")?,
                events: r.try_get("events")?,
                subjects: Vec::new(),
            },
            None => CohortTotals::default(),
        })
    }

    /// The subjects that currently match a cohort rule (read only when it fires).
    pub async fn cohort_matching_subjects(&self, rule_id: &str) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT subject FROM cohort_contributions WHERE rule_id = $1 AND matching = 1 ORDER BY subject",
        )
        .bind(rule_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("subject")?)).collect()
    }

    /// Every subject with at least one record.
    pub async fn subjects(&self) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT subject FROM records ORDER BY subject")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("subject")?)).collect()
    }

    /// The id of the newest alert of a rule, if any.
    pub async fn latest_alert_of(&self, rule_id: &str) -> anyhow::Result<Option<i64>> {
        Ok(sqlx::query("SELECT MAX(id) AS id FROM alerts WHERE rule_id = $1")
            .bind(rule_id)
            .fetch_one(&self.pool)
            .await?
            .try_get("id")?)
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

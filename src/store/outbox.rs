//! The email outbox: pending notifications, delivery attempts with backoff, and outcomes.
//!
//! A row is marked sent only after the SMTP server accepted the message. A crash between
//! the server's acceptance and this commit sends that one message again on restart: the
//! only window in which a notification can be duplicated; none can be lost.

use super::{opt_text, Store};
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct NotificationRow {
    pub id: i64,
    pub alert_id: i64,
    pub role: String,
    pub recipient: String,
    pub blinded: bool,
    pub message_id: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// alert, escalation or resolved
    pub kind: String,
    pub group_key: Option<String>,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone)]
pub enum Delivery {
    Sent,
    /// Try again at this time (epoch ms).
    Retry {
        at_ms: i64,
        error: String,
    },
    /// Give up: the server refused for good (5xx) or the message cannot be built.
    Failed {
        error: String,
    },
}

fn notification_row(r: &sqlx::any::AnyRow) -> anyhow::Result<NotificationRow> {
    Ok(NotificationRow {
        id: r.try_get("id")?,
        alert_id: r.try_get("alert_id")?,
        role: r.try_get("role")?,
        recipient: r.try_get("recipient")?,
        blinded: r.try_get::<i64, _>("blinded")? != 0,
        message_id: r.try_get("message_id")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        last_error: opt_text(r, "last_error"),
        kind: r.try_get("kind")?,
        group_key: opt_text(r, "group_key"),
    })
}

/// A SELECT over every notification column; the tail must be a literal.
macro_rules! select_notifications {
    ($tail:literal) => {
        concat!(
            "SELECT id, alert_id, role, recipient, blinded, message_id, status, attempts, last_error, kind, \
             group_key FROM notifications ",
            $tail
        )
    };
}

impl Store {
    /// Pending notifications whose next attempt is due, oldest first.
    pub async fn due_notifications(&self, limit: i64) -> anyhow::Result<Vec<NotificationRow>> {
        let rows = sqlx::query(select_notifications!(
            "WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2"
        ))
        .bind(self.now_ms())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(notification_row).collect()
    }

    /// Every pending notification of a group (same recipient, same rule or digest),
    /// due or not: a burst goes out as one email.
    pub async fn pending_group(&self, group_key: &str) -> anyhow::Result<Vec<NotificationRow>> {
        let rows =
            sqlx::query(select_notifications!("WHERE status = 'pending' AND group_key = $1 ORDER BY id"))
                .bind(group_key)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(notification_row).collect()
    }

    /// When the next pending notification falls due (epoch ms), if any.
    pub async fn next_notification_due(&self) -> anyhow::Result<Option<i64>> {
        Ok(sqlx::query("SELECT MIN(next_attempt_at) AS t FROM notifications WHERE status = 'pending'")
            .fetch_one(&self.pool)
            .await?
            .try_get("t")?)
    }

    pub async fn record_delivery(&self, id: i64, outcome: &Delivery) -> anyhow::Result<()> {
        let now = self.now_ms();
        let q = match outcome {
            Delivery::Sent => sqlx::query(
                "UPDATE notifications SET status = 'sent', attempts = attempts + 1, sent_at = $2, last_error = NULL \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(now),
            Delivery::Retry { at_ms, error } => sqlx::query(
                "UPDATE notifications SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(*at_ms)
            .bind(error.clone()),
            Delivery::Failed { error } => sqlx::query(
                "UPDATE notifications SET status = 'failed', attempts = attempts + 1, last_error = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(error.clone()),
        };
        q.execute(&self.pool).await?;
        Ok(())
    }

    pub async fn notifications(&self) -> anyhow::Result<Vec<NotificationRow>> {
        let rows = sqlx::query(select_notifications!("ORDER BY id")).fetch_all(&self.pool).await?;
        rows.iter().map(notification_row).collect()
    }
}

//! The one email outbox: alert notices and DSMB report emails alike, their delivery
//! attempts with backoff, and their outcomes.
//!
//! A row is marked sent only after the SMTP server accepted the message. A crash between
//! the server's acceptance and this commit sends that one message again on restart: the
//! only window in which a notification can be duplicated; none can be lost.
//!
//! Several replicas share the outbox: a row is claimed (`claimed_by`, `claimed_until`)
//! before it is sent, so each is sent by one of them; a claim whose holder died runs out
//! and another replica takes the row over.

use super::{opt_text, Backend, Store, KEYS_PER_QUERY};
use sqlx::AssertSqlSafe;
use sqlx::Row;
use std::fmt;
use std::str::FromStr;

/// What a notification tells its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationKind {
    /// The first notice of an alert.
    Alert,
    /// Nobody acknowledged the alert in time: the next role of the chain is told.
    Escalation,
    /// The condition is no longer present.
    Resolved,
    /// A DSMB report, attached.
    Report,
}

/// Where a notification is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationStatus {
    Pending,
    Sent,
    /// The server refused it for good, or the message could not be built.
    Failed,
    /// An escalation no longer needed (the alert was acknowledged or resolved).
    Cancelled,
    /// Held back by a silence.
    Suppressed,
}

/// A kind or status column holding a word vigil never writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown notification {column} `{value}`")]
pub struct UnknownWord {
    pub column: &'static str,
    pub value: String,
}

impl NotificationKind {
    pub const ALL: [Self; 4] = [Self::Alert, Self::Escalation, Self::Resolved, Self::Report];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alert => "alert",
            Self::Escalation => "escalation",
            Self::Resolved => "resolved",
            Self::Report => "report",
        }
    }
}

impl NotificationStatus {
    pub const ALL: [Self; 5] = [Self::Pending, Self::Sent, Self::Failed, Self::Cancelled, Self::Suppressed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Suppressed => "suppressed",
        }
    }
}

macro_rules! word_enum {
    ($t:ty, $column:literal) => {
        impl FromStr for $t {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                Self::ALL
                    .into_iter()
                    .find(|k| k.as_str() == s)
                    .ok_or_else(|| UnknownWord { column: $column, value: s.to_string() })
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        /// Lets callers compare with the stored word (`n.status == "sent"`).
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}
word_enum!(NotificationKind, "kind");
word_enum!(NotificationStatus, "status");

/// What a notification is about: an alert, or an archived report (its attachment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Alert(i64),
    Report(i64),
}

#[derive(Debug, Clone)]
pub struct NotificationRow {
    pub id: i64,
    pub about: Notice,
    pub role: String,
    pub recipient: String,
    pub blinded: bool,
    pub message_id: String,
    pub status: NotificationStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub kind: NotificationKind,
    pub group_key: Option<String>,
    /// When it was queued.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// One line of an alert's email log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryEntry {
    pub id: i64,
    pub kind: String,
    pub role: String,
    pub recipient: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub queued_at: chrono::DateTime<chrono::Utc>,
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

/// A row that does not make a notification (a word vigil never writes, or neither an
/// alert nor a report referenced).
#[derive(Debug, thiserror::Error)]
pub enum BadNotification {
    #[error("notification {id}: {source}")]
    Word { id: i64, source: UnknownWord },
    #[error("notification {id} references {what}")]
    About { id: i64, what: &'static str },
}

fn notification_row(r: &sqlx::any::AnyRow) -> anyhow::Result<NotificationRow> {
    let id: i64 = r.try_get("id")?;
    let word = |source| BadNotification::Word { id, source };
    let about = match (r.try_get::<Option<i64>, _>("alert_id")?, r.try_get::<Option<i64>, _>("report_id")?) {
        (Some(a), None) => Notice::Alert(a),
        (None, Some(rep)) => Notice::Report(rep),
        (None, None) => {
            return Err(BadNotification::About { id, what: "neither an alert nor a report" }.into())
        }
        (Some(_), Some(_)) => {
            return Err(BadNotification::About { id, what: "both an alert and a report" }.into())
        }
    };
    Ok(NotificationRow {
        id,
        about,
        role: r.try_get("role")?,
        recipient: r.try_get("recipient")?,
        blinded: r.try_get::<i64, _>("blinded")? != 0,
        message_id: r.try_get("message_id")?,
        status: r.try_get::<String, _>("status")?.parse().map_err(word)?,
        attempts: r.try_get("attempts")?,
        last_error: opt_text(r, "last_error"),
        kind: r.try_get::<String, _>("kind")?.parse().map_err(word)?,
        group_key: opt_text(r, "group_key"),
        created_at: super::to_time(r.try_get("created_at")?),
    })
}

/// A SELECT over every notification column; the tail must be a literal.
macro_rules! select_notifications {
    ($tail:literal) => {
        concat!(
            "SELECT id, alert_id, report_id, role, recipient, blinded, message_id, status, attempts, last_error, \
             kind, group_key, created_at FROM notifications ",
            $tail
        )
    };
}

impl Store {
    /// Pending notifications whose next attempt is due at `now_ms`, critical alerts first
    /// (a backlog of routine mail never holds one back), then oldest first; only those of
    /// `kind` if given.
    pub async fn due_notifications_at(
        &self,
        now_ms: i64,
        kind: Option<NotificationKind>,
        limit: i64,
    ) -> anyhow::Result<Vec<NotificationRow>> {
        let rows = sqlx::query(select_notifications!(
            "WHERE status = 'pending' AND next_attempt_at <= $1 AND ($2 = '' OR kind = $2) \
             ORDER BY COALESCE((SELECT CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END \
             FROM alerts a WHERE a.id = notifications.alert_id), 1), next_attempt_at, id LIMIT $3"
        ))
        .bind(now_ms)
        .bind(kind.map_or("", NotificationKind::as_str))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(notification_row).collect()
    }

    /// Claims up to `limit` due notifications for this replica (`Store::instance`) until
    /// now + `ttl`, in the order of `due_notifications_at`. A row another replica holds is
    /// skipped, not waited for (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: the write
    /// lock), and a claim that ran out (its holder died) is taken over.
    pub async fn claim_due_notifications(
        &self,
        kind: Option<NotificationKind>,
        limit: i64,
        ttl: std::time::Duration,
    ) -> anyhow::Result<Vec<NotificationRow>> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let claimed = self.select_due(&mut tx, now, kind, limit).await?;
        self.mark_claimed(&mut tx, &claimed, now, ttl).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Claims every pending notification of a group (due or not: a burst goes out as one
    /// email) that no other replica holds; the rows this replica holds already included.
    pub async fn claim_group(
        &self,
        group_key: &str,
        ttl: std::time::Duration,
    ) -> anyhow::Result<Vec<NotificationRow>> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let claimed = self.select_group(&mut tx, group_key, now).await?;
        self.mark_claimed(&mut tx, &claimed, now, ttl).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Claims the most urgent due notification with the rest of its group, in one
    /// transaction (the outbox worker's step): the email to send, first row first.
    pub async fn claim_next_due(
        &self,
        kind: Option<NotificationKind>,
        ttl: std::time::Duration,
    ) -> anyhow::Result<Vec<NotificationRow>> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let Some(first) = self.select_due(&mut tx, now, kind, 1).await?.pop() else {
            return Ok(Vec::new());
        };
        let mut email = match &first.group_key {
            // The first row is this transaction's own (locked or not): it is in its group.
            Some(key) => self.select_group(&mut tx, key, now).await?,
            None => Vec::new(),
        };
        email.retain(|n| n.id != first.id);
        email.insert(0, first);
        self.mark_claimed(&mut tx, &email, now, ttl).await?;
        tx.commit().await?;
        Ok(email)
    }

    async fn select_due(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        now: i64,
        kind: Option<NotificationKind>,
        limit: i64,
    ) -> anyhow::Result<Vec<NotificationRow>> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE OF notifications SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "{}{lock}",
            select_notifications!(
                "WHERE status = 'pending' AND next_attempt_at <= $1 AND ($2 = '' OR kind = $2) \
                 AND (claimed_until IS NULL OR claimed_until <= $1) \
                 ORDER BY COALESCE((SELECT CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END \
                 FROM alerts a WHERE a.id = notifications.alert_id), 1), next_attempt_at, id LIMIT $3"
            )
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now)
            .bind(kind.map_or("", NotificationKind::as_str))
            .bind(limit)
            .fetch_all(&mut **tx)
            .await?;
        rows.iter().map(notification_row).collect()
    }

    async fn select_group(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        group_key: &str,
        now: i64,
    ) -> anyhow::Result<Vec<NotificationRow>> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "{}{lock}",
            select_notifications!(
                "WHERE status = 'pending' AND group_key = $1 \
                 AND (claimed_by = $2 OR claimed_until IS NULL OR claimed_until <= $3) ORDER BY id"
            )
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(group_key)
            .bind(self.instance())
            .bind(now)
            .fetch_all(&mut **tx)
            .await?;
        rows.iter().map(notification_row).collect()
    }

    async fn mark_claimed(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        rows: &[NotificationRow],
        now: i64,
        ttl: std::time::Duration,
    ) -> anyhow::Result<()> {
        let until = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        for chunk in rows.chunks(KEYS_PER_QUERY) {
            // One statement per chunk: ids follow the two values ($3… or ?).
            let ids = match self.backend {
                Backend::Sqlite => super::list_sql(self.backend, chunk.len()),
                Backend::Postgres => {
                    (3..3 + chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
                }
            };
            let (by, until_sql) = match self.backend {
                Backend::Sqlite => ("?", "?"),
                Backend::Postgres => ("$1", "$2"),
            };
            let sql = format!(
                "UPDATE notifications SET claimed_by = {by}, claimed_until = {until_sql} WHERE id IN ({ids})"
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(self.instance().to_string()).bind(until);
            for n in chunk {
                q = q.bind(n.id);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Pending notifications whose next attempt is due now, oldest first.
    pub async fn due_notifications(&self, limit: i64) -> anyhow::Result<Vec<NotificationRow>> {
        self.due_notifications_at(self.now_ms(), None, limit).await
    }

    /// Every pending notification of a group (same recipient, same rule or digest),
    /// due or not, claimed or not (the worker uses `claim_group`).
    pub async fn pending_group(&self, group_key: &str) -> anyhow::Result<Vec<NotificationRow>> {
        let rows =
            sqlx::query(select_notifications!("WHERE status = 'pending' AND group_key = $1 ORDER BY id"))
                .bind(group_key)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(notification_row).collect()
    }

    /// When the next pending notification falls due (epoch ms), if any: one another
    /// replica holds falls due when its claim runs out.
    pub async fn next_notification_due(&self) -> anyhow::Result<Option<i64>> {
        Ok(sqlx::query(
            "SELECT MIN(CASE WHEN claimed_until > next_attempt_at THEN claimed_until ELSE next_attempt_at END) AS t \
             FROM notifications WHERE status = 'pending'",
        )
            .fetch_one(&self.pool)
            .await?
            .try_get("t")?)
    }

    /// Records the outcome of an attempt and lets the claim go. Only the row's claimant
    /// (or anybody, for an unclaimed row) records it: a replica whose claim ran out and was
    /// taken over gets false, and the new claimant's outcome stands.
    pub async fn record_delivery(&self, id: i64, outcome: &Delivery) -> anyhow::Result<bool> {
        let now = self.now_ms();
        let claimant = "claimed_by = NULL, claimed_until = NULL WHERE id = $1 AND (claimed_by IS NULL OR claimed_by = $2)";
        let q = match outcome {
            Delivery::Sent => sqlx::query(AssertSqlSafe(format!(
                "UPDATE notifications SET status = 'sent', attempts = attempts + 1, sent_at = $3, last_error = NULL, {claimant}"
            )))
            .bind(id)
            .bind(self.instance().to_string())
            .bind(now),
            Delivery::Retry { at_ms, error } => sqlx::query(AssertSqlSafe(format!(
                "UPDATE notifications SET attempts = attempts + 1, next_attempt_at = $3, last_error = $4, {claimant}"
            )))
            .bind(id)
            .bind(self.instance().to_string())
            .bind(*at_ms)
            .bind(error.clone()),
            Delivery::Failed { error } => sqlx::query(AssertSqlSafe(format!(
                "UPDATE notifications SET status = 'failed', attempts = attempts + 1, last_error = $3, {claimant}"
            )))
            .bind(id)
            .bind(self.instance().to_string())
            .bind(error.clone()),
        };
        Ok(q.execute(&self.pool).await?.rows_affected() == 1)
    }

    /// The email log of one alert: who was told, how it went.
    pub async fn deliveries_of_alert(&self, alert_id: i64) -> anyhow::Result<Vec<DeliveryEntry>> {
        let rows = sqlx::query(select_notifications!("WHERE alert_id = $1 ORDER BY id"))
            .bind(alert_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let n = notification_row(r)?;
                Ok(DeliveryEntry {
                    id: n.id,
                    kind: n.kind.as_str().to_string(),
                    role: n.role,
                    recipient: n.recipient,
                    status: n.status.as_str().to_string(),
                    attempts: n.attempts,
                    last_error: n.last_error,
                    queued_at: n.created_at,
                })
            })
            .collect()
    }

    /// Queues a failed notification again, due now (`vigil notifications retry`). False if
    /// there is no such notification or it has not failed.
    pub async fn retry_notification(&self, id: i64) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE notifications SET status = 'pending', next_attempt_at = $2 WHERE id = $1 AND status = 'failed'",
        )
        .bind(id)
        .bind(self.now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every notification, alert and report emails alike.
    pub async fn notifications(&self) -> anyhow::Result<Vec<NotificationRow>> {
        let rows = sqlx::query(select_notifications!("ORDER BY id")).fetch_all(&self.pool).await?;
        rows.iter().map(notification_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_statuses_read_back_what_is_written() {
        for k in NotificationKind::ALL {
            assert_eq!(k.as_str().parse::<NotificationKind>(), Ok(k));
        }
        for s in NotificationStatus::ALL {
            assert_eq!(s.as_str().parse::<NotificationStatus>(), Ok(s));
        }
        assert_eq!(NotificationStatus::Sent, "sent");
    }

    #[test]
    fn an_unknown_word_is_an_error_naming_the_column() {
        let e = "digest".parse::<NotificationKind>().unwrap_err();
        assert_eq!(e.to_string(), "unknown notification kind `digest`");
        let e = "Sent".parse::<NotificationStatus>().unwrap_err();
        assert_eq!(e.to_string(), "unknown notification status `Sent`");
    }
}

//! The report archive and the report deliveries.

use super::{now_ms, opt_text, to_time, Store};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

#[derive(Debug, Clone, Serialize)]
pub struct ReportRow {
    pub id: i64,
    /// open or closed
    pub kind: String,
    pub as_of: DateTime<Utc>,
    pub generated_at: DateTime<Utc>,
    pub reason: String,
    /// SHA-256 of the data snapshot the report was made from.
    pub snapshot: String,
    pub path: String,
    /// SHA-256 of the report file.
    pub sha256: String,
}

#[derive(Debug, Clone)]
pub struct ReportDelivery {
    pub id: i64,
    pub report_id: i64,
    pub role: String,
    pub recipient: String,
    pub message_id: String,
    pub attempts: i64,
}

fn report_row(r: &sqlx::any::AnyRow) -> anyhow::Result<ReportRow> {
    Ok(ReportRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        as_of: to_time(r.try_get("as_of")?),
        generated_at: to_time(r.try_get("generated_at")?),
        reason: r.try_get("reason")?,
        snapshot: r.try_get("snapshot")?,
        path: r.try_get("path")?,
        sha256: r.try_get("sha256")?,
    })
}

impl Store {
    /// Archives a generated report and queues its deliveries, in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn archive_report(
        &self,
        kind: &str,
        as_of: DateTime<Utc>,
        reason: &str,
        snapshot: &str,
        path: &str,
        sha256: &str,
        recipients: &[super::Recipient],
        message_domain: &str,
    ) -> anyhow::Result<i64> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO reports (kind, as_of, generated_at, reason, snapshot, path, sha256) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(kind)
        .bind(as_of.timestamp_millis())
        .bind(now)
        .bind(reason)
        .bind(snapshot)
        .bind(path)
        .bind(sha256)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        for (n, r) in recipients.iter().enumerate() {
            sqlx::query(
                "INSERT INTO report_deliveries (report_id, role, recipient, message_id, status, attempts, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, 'pending', 0, $5)",
            )
            .bind(id)
            .bind(&r.role)
            .bind(&r.address)
            .bind(format!("<vigil.report-{id}.{n}@{message_domain}>"))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    pub async fn reports(&self) -> anyhow::Result<Vec<ReportRow>> {
        let rows = sqlx::query(
            "SELECT id, kind, as_of, generated_at, reason, snapshot, path, sha256 FROM reports ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(report_row).collect()
    }

    /// The latest report generated for this reason (for schedules and triggers).
    pub async fn last_report_for(&self, reason: &str) -> anyhow::Result<Option<ReportRow>> {
        let row = sqlx::query(
            "SELECT id, kind, as_of, generated_at, reason, snapshot, path, sha256 FROM reports \
             WHERE reason = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(reason)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(report_row).transpose()
    }

    pub async fn report(&self, id: i64) -> anyhow::Result<Option<ReportRow>> {
        let row = sqlx::query(
            "SELECT id, kind, as_of, generated_at, reason, snapshot, path, sha256 FROM reports WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(report_row).transpose()
    }

    pub async fn due_report_deliveries(&self) -> anyhow::Result<Vec<ReportDelivery>> {
        let rows = sqlx::query(
            "SELECT id, report_id, role, recipient, message_id, attempts FROM report_deliveries \
             WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT 20",
        )
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReportDelivery {
                    id: r.try_get("id")?,
                    report_id: r.try_get("report_id")?,
                    role: r.try_get("role")?,
                    recipient: r.try_get("recipient")?,
                    message_id: r.try_get("message_id")?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect()
    }

    pub async fn record_report_delivery(&self, id: i64, outcome: &super::Delivery) -> anyhow::Result<()> {
        let q = match outcome {
            super::Delivery::Sent => {
                sqlx::query("UPDATE report_deliveries SET status = 'sent', attempts = attempts + 1, sent_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now_ms())
            }
            super::Delivery::Retry { at_ms, error } => sqlx::query(
                "UPDATE report_deliveries SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(*at_ms)
            .bind(error.clone()),
            super::Delivery::Failed { error } => sqlx::query(
                "UPDATE report_deliveries SET status = 'failed', attempts = attempts + 1, last_error = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(error.clone()),
        };
        q.execute(&self.pool).await?;
        Ok(())
    }

    /// (report id, role, recipient, status, last error) of every report delivery.
    pub async fn report_deliveries(
        &self,
    ) -> anyhow::Result<Vec<(i64, String, String, String, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT report_id, role, recipient, status, last_error FROM report_deliveries ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("report_id")?,
                    r.try_get("role")?,
                    r.try_get("recipient")?,
                    r.try_get("status")?,
                    opt_text(r, "last_error"),
                ))
            })
            .collect()
    }
}

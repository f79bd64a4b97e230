//! The report archive. A report's emails are notifications of kind `report` in the one
//! outbox (`store::outbox`), queued here in the same transaction as the archive row.

use super::{opt_text, to_time, Store};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

/// Which DSMB report: the one anybody on the report list may get, or the one split by arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    /// Arms pooled: may go to anyone on the report list.
    Open,
    /// Split by arm: DSMB only, unblinded recipients only.
    Closed,
}

/// A report kind vigil never writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown report kind `{0}`")]
pub struct UnknownReportKind(pub String);

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

impl std::str::FromStr for ReportKind {
    type Err = UnknownReportKind;
    fn from_str(s: &str) -> Result<Self, UnknownReportKind> {
        match s {
            "open" => Ok(Self::Open),
            "closed" => Ok(Self::Closed),
            _ => Err(UnknownReportKind(s.to_string())),
        }
    }
}

impl std::fmt::Display for ReportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // pad: callers align it in columns.
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportRow {
    pub id: i64,
    pub kind: ReportKind,
    pub as_of: DateTime<Utc>,
    pub generated_at: DateTime<Utc>,
    pub reason: String,
    /// SHA-256 of the data snapshot the report was made from.
    pub snapshot: String,
    pub path: String,
    /// SHA-256 of the report file.
    pub sha256: String,
}

fn report_row(r: &sqlx::any::AnyRow) -> anyhow::Result<ReportRow> {
    Ok(ReportRow {
        id: r.try_get("id")?,
        kind: r.try_get::<String, _>("kind")?.parse()?,
        as_of: to_time(r.try_get("as_of")?),
        generated_at: to_time(r.try_get("generated_at")?),
        reason: r.try_get("reason")?,
        snapshot: r.try_get("snapshot")?,
        path: r.try_get("path")?,
        sha256: r.try_get("sha256")?,
    })
}

impl Store {
    /// Archives a generated report and queues its emails in the outbox, in one
    /// transaction. Who may get which report is decided by the caller (`publish`).
    #[allow(clippy::too_many_arguments)]
    pub async fn archive_report(
        &self,
        kind: ReportKind,
        as_of: DateTime<Utc>,
        reason: &str,
        snapshot: &str,
        path: &str,
        sha256: &str,
        recipients: &[super::Recipient],
        message_domain: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<i64> {
        let now = now.timestamp_millis();
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO reports (kind, as_of, generated_at, reason, snapshot, path, sha256) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(kind.as_str())
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
                "INSERT INTO notifications (report_id, role, recipient, blinded, message_id, status, attempts, \
                 next_attempt_at, created_at, kind) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, 'report')",
            )
            .bind(id)
            .bind(&r.role)
            .bind(&r.address)
            .bind(i64::from(r.blinded))
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

    /// (report id, role, recipient, status, last error) of every report email.
    pub async fn report_deliveries(
        &self,
    ) -> anyhow::Result<Vec<(i64, String, String, String, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT report_id, role, recipient, status, last_error FROM notifications \
             WHERE kind = 'report' ORDER BY id",
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

#[cfg(test)]
mod tests {
    use super::ReportKind;

    #[test]
    fn report_kinds_read_back_what_is_written() {
        for k in [ReportKind::Open, ReportKind::Closed] {
            assert_eq!(k.as_str().parse::<ReportKind>(), Ok(k));
        }
        assert_eq!("CLOSED".parse::<ReportKind>().unwrap_err().to_string(), "unknown report kind `CLOSED`");
        assert_eq!(format!("[{:<6}]", ReportKind::Open), "[open  ]");
        assert_eq!(serde_json::to_string(&ReportKind::Closed).unwrap(), "\"closed\"");
    }
}

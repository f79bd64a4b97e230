//! The report archive. A report's emails are notifications of kind `report` in the one
//! outbox (`store::outbox`), queued here in the same transaction as the archive row.

use super::{opt_text, to_time, Backend, Store};
use anyhow::Context;
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
    /// When and by whom it was released to its readers, with the signature if signed.
    pub released_at: Option<DateTime<Utc>>,
    pub released_by: Option<String>,
    pub signature_id: Option<i64>,
}

impl ReportRow {
    /// What a signature on this report's release signs: the file (its hash) and its cut.
    pub fn signed_content(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "kind": self.kind.as_str(),
            "as_of": self.as_of.timestamp_millis(),
            "snapshot": self.snapshot,
            "path": self.path,
            "sha256": self.sha256,
        })
    }
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
        released_at: r.try_get::<Option<i64>, _>("released_at")?.map(to_time),
        released_by: super::opt_text(r, "released_by"),
        signature_id: r.try_get("signature_id")?,
    })
}

/// A replica's right to make one due report (see `Store::claim_report`); let go when dropped.
pub struct ReportClaim {
    _held: Option<sqlx::Transaction<'static, sqlx::Any>>,
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
        let archived = self
            .archive_report_due(
                kind,
                as_of,
                reason,
                None,
                snapshot,
                path,
                sha256,
                recipients,
                message_domain,
                now,
            )
            .await?;
        // A report without a due time has no unique key to meet.
        archived.context("the report was not archived")
    }

    /// `archive_report` for the occurrence `due` of a schedule or trigger (None: on
    /// demand). A report of this reason, kind and due time is archived once: None when
    /// another runner archived it first (nothing is queued then).
    #[allow(clippy::too_many_arguments)]
    pub async fn archive_report_due(
        &self,
        kind: ReportKind,
        as_of: DateTime<Utc>,
        reason: &str,
        due: Option<DateTime<Utc>>,
        snapshot: &str,
        path: &str,
        sha256: &str,
        recipients: &[super::Recipient],
        message_domain: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<i64>> {
        let now = now.timestamp_millis();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "INSERT INTO reports (kind, as_of, generated_at, reason, snapshot, path, sha256, due_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(kind.as_str())
        .bind(as_of.timestamp_millis())
        .bind(now)
        .bind(reason)
        .bind(snapshot)
        .bind(path)
        .bind(sha256)
        .bind(due.map(|d| d.timestamp_millis()))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: i64 = row.try_get("id")?;
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
        Ok(Some(id))
    }

    /// The right to make the report due at `due` for `reason`: None if it is made already,
    /// or (PostgreSQL) another replica is making it now. The claim is an advisory lock
    /// held by an open transaction until the claim is dropped, so a replica that dies
    /// while making it lets it go at once; the archive's unique key stays the last guard.
    pub async fn claim_report(
        &self,
        reason: &str,
        due: DateTime<Utc>,
    ) -> anyhow::Result<Option<ReportClaim>> {
        let due_ms = due.timestamp_millis();
        let held = match self.backend {
            Backend::Postgres => {
                let mut tx = self.pool.begin().await.context("cannot start a transaction")?;
                let key = super::advisory_key(&format!("report:{due_ms}:{reason}"));
                let got: bool = sqlx::query("SELECT pg_try_advisory_xact_lock($1) AS got")
                    .bind(key)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("got")?;
                if !got {
                    return Ok(None);
                }
                Some(tx)
            }
            Backend::Sqlite => None,
        };
        let made = sqlx::query("SELECT id FROM reports WHERE reason = $1 AND due_at = $2 LIMIT 1")
            .bind(reason)
            .bind(due_ms)
            .fetch_optional(&self.pool)
            .await?;
        Ok(made.is_none().then_some(ReportClaim { _held: held }))
    }

    pub async fn reports(&self) -> anyhow::Result<Vec<ReportRow>> {
        let rows = sqlx::query(
            "SELECT id, kind, as_of, generated_at, reason, snapshot, path, sha256, released_at, released_by, signature_id FROM reports ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(report_row).collect()
    }

    /// The latest report generated for this reason (for schedules and triggers).
    pub async fn last_report_for(&self, reason: &str) -> anyhow::Result<Option<ReportRow>> {
        let row = sqlx::query(
            "SELECT id, kind, as_of, generated_at, reason, snapshot, path, sha256, released_at, released_by, signature_id FROM reports \
             WHERE reason = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(reason)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(report_row).transpose()
    }

    pub async fn report(&self, id: i64) -> anyhow::Result<Option<ReportRow>> {
        let row = sqlx::query(
            "SELECT id, kind, as_of, generated_at, reason, snapshot, path, sha256, released_at, released_by, signature_id FROM reports WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(report_row).transpose()
    }

    /// Releases a report to its readers, once, with the releaser's signature if given (in
    /// the same transaction). False if it was released already.
    pub async fn release_report(
        &self,
        id: i64,
        by: &str,
        signature: Option<&crate::accounts::NewSignature>,
    ) -> anyhow::Result<bool> {
        self.signed_once(
            "UPDATE reports SET released_at = $2, released_by = $3, signature_id = $4 \
             WHERE id = $1 AND released_at IS NULL",
            id,
            by,
            signature,
        )
        .await
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

//! Console sessions: which browser is signed in as whom, until when.

use super::{to_time, Store};
use sqlx::Row;

/// A live console session.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub user_id: String,
    pub csrf: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_seen_at: chrono::DateTime<chrono::Utc>,
    /// Whether the person has signed once in this session (later signings ask for the
    /// password only).
    pub signed: bool,
}

impl Store {
    pub async fn create_session(&self, digest: &str, user_id: &str, csrf: &str) -> anyhow::Result<()> {
        let now = self.now_ms();
        sqlx::query(
            "INSERT INTO console_sessions (digest, user_id, csrf, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(digest)
        .bind(user_id)
        .bind(csrf)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The session with this cookie digest if it is live: not ended, and seen within
    /// `idle`. A live session's last-seen time moves to now; an idle one is ended.
    pub async fn live_session(
        &self,
        digest: &str,
        idle: std::time::Duration,
    ) -> anyhow::Result<Option<SessionRow>> {
        let now = self.now_ms();
        let oldest = now - i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        let row = sqlx::query(
            "SELECT user_id, csrf, created_at, last_seen_at, signed_at FROM console_sessions \
             WHERE digest = $1 AND ended_at IS NULL",
        )
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let seen: i64 = row.try_get("last_seen_at")?;
        if seen < oldest {
            self.end_session(digest).await?;
            return Ok(None);
        }
        sqlx::query("UPDATE console_sessions SET last_seen_at = $2 WHERE digest = $1")
            .bind(digest)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(Some(SessionRow {
            user_id: row.try_get("user_id")?,
            csrf: row.try_get("csrf")?,
            created_at: to_time(row.try_get("created_at")?),
            last_seen_at: to_time(now),
            signed: row.try_get::<Option<i64>, _>("signed_at")?.is_some(),
        }))
    }

    pub async fn end_session(&self, digest: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE console_sessions SET ended_at = $2 WHERE digest = $1 AND ended_at IS NULL")
            .bind(digest)
            .bind(self.now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn mark_session_signed(&self, digest: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE console_sessions SET signed_at = COALESCE(signed_at, $2) WHERE digest = $1")
            .bind(digest)
            .bind(self.now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

//! Leases: singleton work (the clock pass: SAE clocks, overdue visits, escalations,
//! silence expiry, report schedules) is done by one replica at a time. A lease is a row
//! with its holder, a fencing token and an expiry; the holder renews it on each pass, and
//! when the holder dies another replica takes it once it has run out.
//!
//! A lease narrows the work to one runner; it is not what makes the work safe: the
//! changes the clock pass makes are guarded in the store (a silence ends once, a step
//! escalates once, a report is archived once per due time), so an overlap — a holder
//! paused past its expiry — cannot send twice.

use super::{Backend, Store};
use sqlx::Row;
use std::time::Duration;

impl Store {
    /// Takes or renews the lease `name` for `holder` until now + `ttl`. Returns its
    /// fencing token (unchanged on renewal, one more on each change of holder), or None
    /// while another holder's lease has not run out. On SQLite (one process) it is
    /// always granted.
    pub async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> anyhow::Result<Option<i64>> {
        let now = self.now_ms();
        let until = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        // Only PostgreSQL has other replicas to wait for.
        let guard = match self.backend {
            Backend::Postgres => " WHERE leases.holder = excluded.holder OR leases.expires_at <= $4",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "INSERT INTO leases (name, holder, token, expires_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (name) DO UPDATE SET \
             token = CASE WHEN leases.holder = excluded.holder THEN leases.token ELSE leases.token + 1 END, \
             holder = excluded.holder, expires_at = excluded.expires_at{guard} RETURNING token"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(name).bind(holder).bind(until);
        if self.backend == Backend::Postgres {
            query = query.bind(now);
        }
        let row = query.fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.try_get("token")).transpose()?)
    }

    /// Gives the lease up (a clean stop), so another replica need not wait for it to run out.
    pub async fn release_lease(&self, name: &str, holder: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether `holder` still holds `name` under `token` now: a holder checks it before a
    /// change it must not make after losing the lease.
    pub async fn holds_lease(&self, name: &str, holder: &str, token: i64) -> anyhow::Result<bool> {
        let row = sqlx::query(
            "SELECT 1 AS held FROM leases WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > $4",
        )
        .bind(name)
        .bind(holder)
        .bind(token)
        .bind(self.now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }
}

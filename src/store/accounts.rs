//! Users, their API tokens and their signatures. Every change here is also an audit entry
//! (the triggers of migration 0011); `updated_by` / `revoked_by` name who made it.

use super::{to_time, Store};
use crate::accounts::{NewSignature, Scope, Signature, User};
use anyhow::Context;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// A person's API token, without the token.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenRow {
    pub id: i64,
    pub user_id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub created_by: String,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Why an account change was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("no user `{0}`")]
    NoSuchUser(String),
    #[error("a user `{0}` exists already (a user id is never reused, even when disabled)")]
    Exists(String),
    #[error("no token #{0}")]
    NoSuchToken(i64),
}

const USER_COLUMNS: &str = "id, name, email, roles, password_hash, password_changed_at, failed_attempts, \
                            locked_at, disabled_at, created_at, created_by";

fn user(row: &AnyRow) -> anyhow::Result<User> {
    let roles: String = row.try_get("roles")?;
    let time = |c: &str| -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
        Ok(row.try_get::<Option<i64>, _>(c)?.map(to_time))
    };
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        roles: serde_json::from_str(&roles).context("a user's roles are not a JSON list")?,
        password_changed_at: to_time(row.try_get("password_changed_at")?),
        failed_attempts: row.try_get("failed_attempts")?,
        locked_at: time("locked_at")?,
        disabled_at: time("disabled_at")?,
        created_at: to_time(row.try_get("created_at")?),
        created_by: row.try_get("created_by")?,
    })
}

fn token(row: &AnyRow) -> anyhow::Result<TokenRow> {
    let scopes: String = row.try_get("scopes")?;
    Ok(TokenRow {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        scopes: Scope::parse_list(&scopes).map_err(anyhow::Error::msg)?,
        created_at: to_time(row.try_get("created_at")?),
        created_by: row.try_get("created_by")?,
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(to_time),
    })
}

fn signature(row: &AnyRow) -> anyhow::Result<Signature> {
    Ok(Signature {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        printed_name: row.try_get("printed_name")?,
        meaning: row.try_get("meaning")?,
        action: row.try_get("action")?,
        entity: row.try_get("entity")?,
        entity_id: row.try_get("entity_id")?,
        content_hash: row.try_get("content_hash")?,
        comment: row.try_get("comment")?,
        signed_at: to_time(row.try_get("signed_at")?),
        zone: row.try_get("zone")?,
        local_time: row.try_get("local_time")?,
    })
}

/// Records the signature, if any, inside the transaction of the action it signs: its id.
pub(super) async fn insert_signature_of(
    tx: &mut Transaction<'static, Any>,
    signature: Option<&NewSignature>,
) -> anyhow::Result<Option<i64>> {
    match signature {
        Some(s) => Ok(Some(insert_signature(tx, s).await?)),
        None => Ok(None),
    }
}

/// Records a signature inside the transaction of the action it signs.
async fn insert_signature(tx: &mut Transaction<'static, Any>, s: &NewSignature) -> anyhow::Result<i64> {
    let row = sqlx::query(
        "INSERT INTO signatures (user_id, printed_name, meaning, action, entity, entity_id, content_hash, signed_at, \
         zone, local_time, comment) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(&s.user_id)
    .bind(&s.printed_name)
    .bind(s.meaning.as_str())
    .bind(s.action.as_str())
    .bind(&s.entity)
    .bind(&s.entity_id)
    .bind(&s.content_hash)
    .bind(s.signed_at.timestamp_millis())
    .bind(&s.zone)
    .bind(&s.local_time)
    .bind(&s.comment)
    .fetch_one(&mut **tx)
    .await
    .context("cannot record the signature")?;
    Ok(row.try_get("id")?)
}

impl Store {
    /// Runs `update` (`$1` id, `$2` now, `$3` who, `$4` the signature's id) once, with the
    /// signature recorded in the same transaction: both or neither. False if `update`
    /// changed no row (done already), and then nothing is signed either.
    pub(super) async fn signed_once(
        &self,
        update: &'static str,
        id: i64,
        by: &str,
        signature: Option<&NewSignature>,
    ) -> anyhow::Result<bool> {
        let mut tx = self.begin_write().await?;
        let signed = insert_signature_of(&mut tx, signature).await?;
        let done =
            sqlx::query(update).bind(id).bind(self.now_ms()).bind(by).bind(signed).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Adds a person. The id is theirs for good: it is never reused (§11.100(a)).
    pub async fn create_user(
        &self,
        id: &str,
        name: &str,
        email: &str,
        roles: &[String],
        password_hash: &str,
        by: &str,
    ) -> anyhow::Result<()> {
        if self.user(id).await?.is_some() {
            return Err(AccountError::Exists(id.into()).into());
        }
        let now = self.now_ms();
        sqlx::query(
            "INSERT INTO users (id, name, email, roles, password_hash, password_changed_at, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
        )
        .bind(id)
        .bind(name)
        .bind(email)
        .bind(serde_json::to_string(roles)?)
        .bind(password_hash)
        .bind(now)
        .bind(by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn user(&self, id: &str) -> anyhow::Result<Option<User>> {
        Ok(self.user_with_password(id).await?.map(|(u, _)| u))
    }

    /// A user and their password hash (for the password check of `access`, only).
    pub(crate) async fn user_with_password(&self, id: &str) -> anyhow::Result<Option<(User, String)>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        row.map(|r| Ok((user(&r)?, r.try_get("password_hash")?))).transpose()
    }

    pub async fn users(&self) -> anyhow::Result<Vec<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        rows.iter().map(user).collect()
    }

    /// Runs `UPDATE users SET {set}` with `$3` = now (also `updated_at`), `$2` = who (also
    /// `updated_by`) and `values` from `$4` on.
    async fn update_user(&self, id: &str, set: &str, by: &str, values: &[&str]) -> anyhow::Result<()> {
        let sql = format!("UPDATE users SET {set}, updated_by = $2, updated_at = $3 WHERE id = $1");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(by).bind(self.now_ms());
        for v in values {
            q = q.bind(v.to_string());
        }
        if q.execute(&self.pool).await?.rows_affected() == 0 {
            return Err(AccountError::NoSuchUser(id.into()).into());
        }
        Ok(())
    }

    /// Disables an account: it can no longer sign in, sign or use its tokens; its history
    /// stays, and its id is never given to anyone else.
    pub async fn disable_user(&self, id: &str, by: &str) -> anyhow::Result<()> {
        self.update_user(id, "disabled_at = COALESCE(disabled_at, $3)", by, &[]).await
    }

    /// Sets a new password (hash); clears a lockout and the count of wrong passwords.
    pub async fn set_password(&self, id: &str, password_hash: &str, by: &str) -> anyhow::Result<()> {
        let set = "password_hash = $4, password_changed_at = $3, failed_attempts = 0, locked_at = NULL";
        self.update_user(id, set, by, &[password_hash]).await
    }

    /// Lifts a lockout.
    pub async fn unlock_user(&self, id: &str, by: &str) -> anyhow::Result<()> {
        self.update_user(id, "locked_at = NULL, failed_attempts = 0", by, &[]).await
    }

    /// Counts a wrong password; true if this one locked the account.
    pub(crate) async fn record_failed_password(&self, id: &str, lockout_after: u32) -> anyhow::Result<bool> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE users SET failed_attempts = failed_attempts + 1, \
             locked_at = CASE WHEN locked_at IS NULL AND failed_attempts + 1 >= $2 THEN $3 ELSE locked_at END, \
             updated_by = 'vigil', updated_at = $3 WHERE id = $1 RETURNING failed_attempts, locked_at",
        )
        .bind(id)
        .bind(i64::from(lockout_after))
        .bind(self.now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(match row {
            Some(r) => {
                let n: i64 = r.try_get("failed_attempts")?;
                r.try_get::<Option<i64>, _>("locked_at")?.is_some() && n == i64::from(lockout_after)
            }
            None => false,
        })
    }

    pub(crate) async fn reset_failed_passwords(&self, id: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE users SET failed_attempts = 0 WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores a token's digest for `user_id`; returns its id.
    pub async fn create_token(
        &self,
        user_id: &str,
        name: &str,
        digest: &str,
        scopes: &[Scope],
        by: &str,
    ) -> anyhow::Result<i64> {
        if self.user(user_id).await?.is_none() {
            return Err(AccountError::NoSuchUser(user_id.into()).into());
        }
        let row = sqlx::query(
            "INSERT INTO api_tokens (user_id, name, digest, scopes, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(user_id)
        .bind(name)
        .bind(digest)
        .bind(Scope::list(scopes))
        .bind(self.now_ms())
        .bind(by)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// The live token with this digest and its owner, if the owner may still act.
    pub async fn token_owner(&self, digest: &str) -> anyhow::Result<Option<(TokenRow, User)>> {
        let row = sqlx::query(
            "SELECT id, user_id, name, scopes, created_at, created_by, revoked_at FROM api_tokens \
             WHERE digest = $1 AND revoked_at IS NULL",
        )
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let t = token(&row)?;
        let owner = self.user(&t.user_id).await?;
        Ok(owner.filter(|u| u.disabled_at.is_none() && u.locked_at.is_none()).map(|u| (t, u)))
    }

    pub async fn tokens(&self) -> anyhow::Result<Vec<TokenRow>> {
        let rows = sqlx::query(
            "SELECT id, user_id, name, scopes, created_at, created_by, revoked_at FROM api_tokens ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token).collect()
    }

    pub async fn revoke_token(&self, id: i64, by: &str) -> anyhow::Result<()> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $2, revoked_by = $3 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(self.now_ms())
        .bind(by)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(AccountError::NoSuchToken(id).into());
        }
        Ok(())
    }

    pub async fn signature(&self, id: i64) -> anyhow::Result<Option<Signature>> {
        let row = sqlx::query(
            "SELECT id, user_id, printed_name, meaning, action, entity, entity_id, content_hash, signed_at, zone, \
             local_time, comment FROM signatures WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| signature(&r)).transpose()
    }

    /// Every signature on an alert's action, with the alert's id, in the order signed.
    pub async fn alert_signatures(&self) -> anyhow::Result<Vec<(i64, Signature)>> {
        let rows = sqlx::query(
            "SELECT e.alert_id, s.id, s.user_id, s.printed_name, s.meaning, s.action, s.entity, s.entity_id,              s.content_hash, s.signed_at, s.zone, s.local_time, s.comment              FROM alert_events e JOIN signatures s ON s.id = e.signature_id ORDER BY e.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("alert_id")?, signature(r)?))).collect()
    }

    /// Records a signature with no other change in the same transaction.
    pub async fn record_signature(&self, s: &NewSignature) -> anyhow::Result<i64> {
        let mut tx = self.begin_write().await?;
        let id = insert_signature(&mut tx, s).await?;
        tx.commit().await?;
        Ok(id)
    }
}

//! The audit trail's rows: written by the database's triggers on every electronic record
//! (migration 0011) and, for what changes no table (a refused action, a failed sign-in),
//! by [`Store::audit`]; sealed into a hash chain here, in one order for every replica.

use super::{Backend, Store};
use crate::audit::{check_link, entry_hash, Entry, Verification, GENESIS};
use anyhow::Context;
use sqlx::{AnyPool, Row};

/// Entries sealed per transaction: a long backlog (a bulk import) is sealed in steps so
/// that no transaction holds the write lock for long.
const SEAL_BATCH: i64 = 2_000;

/// The server's time in epoch ms, in each dialect: an entry's time is the database's, not
/// the client's.
fn now_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        Backend::Postgres => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
    }
}

/// Appends an entry through `pool` (used where no [`Store`] exists, e.g. `store copy`).
pub(crate) async fn append_to(
    pool: &AnyPool,
    actor: &str,
    action: &str,
    entity: &str,
    entity_id: &str,
    detail: &serde_json::Value,
) -> anyhow::Result<()> {
    let backend = match pool.connect_options().database_url.scheme() {
        "sqlite" => Backend::Sqlite,
        _ => Backend::Postgres,
    };
    let sql = format!(
        "INSERT INTO audit_log (at, actor, action, entity, entity_id, detail) VALUES ({}, $1, $2, $3, $4, $5)",
        now_sql(backend)
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(actor)
        .bind(action)
        .bind(entity)
        .bind(entity_id)
        .bind(detail.to_string())
        .execute(pool)
        .await
        .context("cannot write to the audit trail")?;
    Ok(())
}

/// Who acts from the command line on this machine: the operating-system account and host.
pub(crate) fn local_operator() -> String {
    crate::audit::local_operator()
}

fn entry(row: &sqlx::any::AnyRow) -> anyhow::Result<Entry> {
    Ok(Entry {
        seq: row.try_get("seq")?,
        at: super::to_time(row.try_get("at")?),
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        entity: row.try_get("entity")?,
        entity_id: row.try_get("entity_id")?,
        detail: row.try_get("detail")?,
        pos: row.try_get("pos")?,
        prev_hash: super::opt_text(row, "prev_hash"),
        hash: super::opt_text(row, "hash"),
    })
}

const COLUMNS: &str = "seq, at, actor, action, entity, entity_id, detail, pos, prev_hash, hash";

impl Store {
    /// Records what no table shows: a refused action, a failed sign-in, an export.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        entity: &str,
        entity_id: &str,
        detail: &serde_json::Value,
    ) -> anyhow::Result<()> {
        append_to(&self.pool, actor, action, entity, entity_id, detail).await
    }

    /// Seals the entries written since the last seal into the chain, oldest first: each
    /// gets the next position, the previous entry's hash and its own. Returns how many.
    /// Replicas may all call this: one seals at a time (the write lock on SQLite, an
    /// advisory lock on PostgreSQL), and a replica that finds another sealing skips.
    pub async fn seal_audit(&self) -> anyhow::Result<usize> {
        let mut sealed = 0;
        loop {
            let n = self.seal_audit_batch().await?;
            sealed += n;
            if n < SEAL_BATCH as usize {
                return Ok(sealed);
            }
        }
    }

    async fn seal_audit_batch(&self) -> anyhow::Result<usize> {
        // Nothing to do is the common case: ask without taking the write lock.
        let waiting: Option<i64> = sqlx::query("SELECT seq FROM audit_log WHERE hash IS NULL LIMIT 1")
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("seq"))
            .transpose()?;
        if waiting.is_none() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            let got: bool = sqlx::query("SELECT pg_try_advisory_xact_lock($1) AS got")
                .bind(super::advisory_key("audit-seal"))
                .fetch_one(&mut *tx)
                .await?
                .try_get("got")?;
            if !got {
                return Ok(0);
            }
        }
        let last =
            sqlx::query("SELECT pos, hash FROM audit_log WHERE pos IS NOT NULL ORDER BY pos DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let (mut pos, mut prev) = match last {
            Some(r) => (r.try_get::<i64, _>("pos")?, r.try_get::<String, _>("hash")?),
            None => (0, GENESIS.to_string()),
        };
        let sql =
            format!("SELECT {COLUMNS} FROM audit_log WHERE hash IS NULL ORDER BY seq LIMIT {SEAL_BATCH}");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *tx).await?;
        let mut seals = Vec::with_capacity(rows.len());
        for row in &rows {
            let e = entry(row)?;
            pos += 1;
            let hash = entry_hash(&prev, pos, &e);
            seals.push((e.seq, pos, std::mem::replace(&mut prev, hash.clone()), hash));
        }
        for chunk in seals.chunks(super::KEYS_PER_QUERY / 4) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let b = i * 4;
                    match self.backend {
                        Backend::Sqlite => "(?, ?, ?, ?)".to_string(),
                        Backend::Postgres => {
                            format!(
                                "(${}::BIGINT, ${}::BIGINT, ${}::TEXT, ${}::TEXT)",
                                b + 1,
                                b + 2,
                                b + 3,
                                b + 4
                            )
                        }
                    }
                })
                .collect();
            let sql = format!(
                "WITH v (seq, pos, prev_hash, hash) AS (VALUES {}) \
                 UPDATE audit_log SET pos = v.pos, prev_hash = v.prev_hash, hash = v.hash \
                 FROM v WHERE audit_log.seq = v.seq",
                values.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (seq, pos, prev, hash) in chunk {
                q = q.bind(*seq).bind(*pos).bind(prev.clone()).bind(hash.clone());
            }
            q.execute(&mut *tx).await.context("cannot seal the audit trail")?;
        }
        tx.commit().await?;
        Ok(seals.len())
    }

    /// Sealed entries from position `after + 1` on, at most `limit`, in chain order.
    pub async fn audit_chain(&self, after: i64, limit: i64) -> anyhow::Result<Vec<Entry>> {
        let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE pos > $1 ORDER BY pos LIMIT $2");
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(after).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(entry).collect()
    }

    /// Walks the chain from its first entry and stops at the first break.
    pub async fn verify_audit(&self) -> anyhow::Result<Verification> {
        const PAGE: i64 = 5_000;
        let mut prev = GENESIS.to_string();
        let mut expected = 1;
        let mut head = None;
        let first_break = 'walk: loop {
            let page = self.audit_chain(expected - 1, PAGE).await?;
            let last_page = (page.len() as i64) < PAGE;
            for e in page {
                if let Some(b) = check_link(&prev, expected, &e) {
                    break 'walk Some(b);
                }
                let hash = e.hash.unwrap_or_default();
                head = Some((expected, hash.clone()));
                prev = hash;
                expected += 1;
            }
            if last_page {
                break None;
            }
        };
        Ok(Verification { entries: expected - 1, head, unsealed: self.audit_unsealed().await?, first_break })
    }

    /// Entries not yet sealed.
    pub async fn audit_unsealed(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM audit_log WHERE hash IS NULL")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    /// Every entry whose time is in `[from, to)`, sealed ones in chain order then the rest.
    pub async fn audit_between(&self, from_ms: i64, to_ms: i64) -> anyhow::Result<Vec<Entry>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log WHERE at >= $1 AND at < $2 \
             ORDER BY CASE WHEN pos IS NULL THEN 1 ELSE 0 END, pos, seq"
        );
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(from_ms).bind(to_ms).fetch_all(&self.pool).await?;
        rows.iter().map(entry).collect()
    }

    /// The last sealed entry's position and hash: the head a report or digest witnesses.
    pub async fn audit_head(&self) -> anyhow::Result<Option<(i64, String)>> {
        let row =
            sqlx::query("SELECT pos, hash FROM audit_log WHERE pos IS NOT NULL ORDER BY pos DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| Ok((r.try_get("pos")?, r.try_get("hash")?))).transpose()
    }

    /// The entries about one thing (an alert, a report), oldest first.
    pub async fn audit_of(&self, entity: &str, entity_id: &str) -> anyhow::Result<Vec<Entry>> {
        let sql =
            format!("SELECT {COLUMNS} FROM audit_log WHERE entity = $1 AND entity_id = $2 ORDER BY seq");
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(entity).bind(entity_id).fetch_all(&self.pool).await?;
        rows.iter().map(entry).collect()
    }
}

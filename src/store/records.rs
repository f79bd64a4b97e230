//! Records, adverse-event versions, quarantine and the evaluation queue.

use super::Store;
use crate::model::{Record, SubjectHistory, SubjectId};
use anyhow::Context;
use sha2::{Digest, Sha256};
use sqlx::Row;

/// A record that parsed, with the JSON text it came from.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// Where it came from: a file name, or `http`.
    pub source: String,
    /// Line (1-based) within the source; 0 when the source has no lines.
    pub line: usize,
    pub body: serde_json::Value,
    pub record: Record,
}

/// A line that could not be read, and why.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub source: String,
    pub line: usize,
    pub field: String,
    pub reason: String,
    pub raw: String,
}

#[derive(Debug, Default, Clone)]
pub struct BatchOutcome {
    pub stored: usize,
    pub duplicates: usize,
    /// Records refused because their record_id was already stored with other content.
    pub conflicts: Vec<Rejected>,
    pub quarantined: usize,
    pub subjects: Vec<String>,
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Store {
    /// Stores a batch in one transaction: new records, new adverse-event versions, the
    /// quarantined lines, and the subjects to evaluate. Delivering the same record again
    /// (same record_id, else same content) changes nothing.
    pub async fn store_batch(
        &self,
        records: &[NewRecord],
        rejected: &[Rejected],
    ) -> anyhow::Result<BatchOutcome> {
        let mut out = BatchOutcome::default();
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        for r in records {
            // serde_json's map is ordered by key, so this text is canonical.
            let body = r.body.to_string();
            let hash = sha256(&body);
            let key = match &r.record.record_id {
                Some(id) => format!("id:{id}"),
                None => format!("sha256:{hash}"),
            };
            let existing = sqlx::query("SELECT content_hash FROM records WHERE record_key = $1")
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = existing {
                let stored: String = row.try_get("content_hash")?;
                if stored == hash {
                    out.duplicates += 1;
                } else {
                    out.conflicts.push(Rejected {
                        source: r.source.clone(),
                        line: r.line,
                        field: "record_id".into(),
                        reason: format!(
                            "record_id `{}` was already stored with different content; \
                             send a correction under a new record_id (adverse events: same AE id)",
                            r.record.record_id.as_deref().unwrap_or_default()
                        ),
                        raw: body,
                    });
                }
                continue;
            }
            let subject = r.record.subject.as_str();
            let seq: i64 = sqlx::query(
                "INSERT INTO records (record_key, content_hash, subject, source, received_at, body) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
            )
            .bind(&key)
            .bind(&hash)
            .bind(subject)
            .bind(format!("{}:{}", r.source, r.line))
            .bind(now)
            .bind(&body)
            .fetch_one(&mut *tx)
            .await
            .context("cannot store a record")?
            .try_get("seq")?;
            for ae in &r.record.adverse_events {
                let Some(ae_id) = &ae.id else { continue };
                let ae_hash = sha256(&serde_json::to_string(ae)?);
                let latest = sqlx::query(
                    "SELECT version, content_hash FROM adverse_event_versions \
                     WHERE subject = $1 AND ae_id = $2 ORDER BY version DESC LIMIT 1",
                )
                .bind(subject)
                .bind(ae_id)
                .fetch_optional(&mut *tx)
                .await?;
                let version = match latest {
                    Some(row) if row.try_get::<String, _>("content_hash")? == ae_hash => continue,
                    Some(row) => row.try_get::<i64, _>("version")? + 1,
                    None => 1,
                };
                sqlx::query(
                    "INSERT INTO adverse_event_versions \
                     (subject, ae_id, version, record_seq, content_hash, grade, serious, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(subject)
                .bind(ae_id)
                .bind(version)
                .bind(seq)
                .bind(&ae_hash)
                .bind(ae.grade.map(|g| i64::from(g.value())))
                .bind(i64::from(ae.serious))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO pending_evaluation (subject, up_to_seq) VALUES ($1, $2) \
                 ON CONFLICT (subject) DO UPDATE SET up_to_seq = excluded.up_to_seq",
            )
            .bind(subject)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
            out.stored += 1;
            if !out.subjects.iter().any(|s| s == subject) {
                out.subjects.push(subject.to_string());
            }
        }
        for q in rejected.iter().chain(out.conflicts.iter()) {
            let entry_key = sha256(&format!("{}\n{}\n{}", q.source, q.line, q.raw));
            let done = sqlx::query(
                "INSERT INTO quarantine (entry_key, source, line, field, reason, raw, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (entry_key) DO NOTHING",
            )
            .bind(&entry_key)
            .bind(&q.source)
            .bind(q.line as i64)
            .bind(&q.field)
            .bind(&q.reason)
            .bind(&q.raw)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            out.quarantined += done.rows_affected() as usize;
        }
        tx.commit().await.context("cannot commit the batch")?;
        Ok(out)
    }

    /// Subjects whose history changed since their last evaluation, with the newest
    /// record seq seen for each.
    pub async fn pending_subjects(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT subject, up_to_seq FROM pending_evaluation ORDER BY up_to_seq")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("subject")?, r.try_get("up_to_seq")?))).collect()
    }

    /// The subject's whole stored history, in arrival order.
    pub async fn history(&self, subject: &str) -> anyhow::Result<SubjectHistory> {
        let rows = sqlx::query("SELECT seq, body FROM records WHERE subject = $1 ORDER BY seq")
            .bind(subject)
            .fetch_all(&self.pool)
            .await?;
        let id = SubjectId::parse(subject).map_err(anyhow::Error::msg)?;
        Ok(SubjectHistory::new(id, decode(&rows)?).placed(&self.zones))
    }

    /// Every subject's history (for reports and cohort views).
    pub async fn all_histories(&self) -> anyhow::Result<Vec<SubjectHistory>> {
        let rows = sqlx::query("SELECT seq, subject, body FROM records ORDER BY subject, seq")
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<SubjectHistory> = Vec::new();
        for (subject, group) in group_by_subject(&rows)? {
            let id = SubjectId::parse(&subject).map_err(anyhow::Error::msg)?;
            out.push(SubjectHistory::new(id, decode(&group)?).placed(&self.zones));
        }
        Ok(out)
    }

    pub async fn quarantine_count(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM quarantine").fetch_one(&self.pool).await?.try_get("n")?)
    }

    pub async fn record_count(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM records").fetch_one(&self.pool).await?.try_get("n")?)
    }

    /// Number of stored versions of one adverse event.
    pub async fn adverse_event_versions(&self, subject: &str, ae_id: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM adverse_event_versions WHERE subject = $1 AND ae_id = $2")
            .bind(subject)
            .bind(ae_id)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }
}

fn group_by_subject(rows: &[sqlx::any::AnyRow]) -> anyhow::Result<Vec<(String, Vec<sqlx::any::AnyRow>)>> {
    let mut groups: Vec<(String, Vec<sqlx::any::AnyRow>)> = Vec::new();
    for row in rows {
        let subject: String = row.try_get("subject")?;
        match groups.last_mut() {
            Some((s, g)) if *s == subject => g.push(row.clone()),
            _ => groups.push((subject, vec![row.clone()])),
        }
    }
    Ok(groups)
}

/// Stored bodies go back through the same door as new input, so rules see checked types.
fn decode(rows: &[sqlx::any::AnyRow]) -> anyhow::Result<Vec<Record>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let seq: i64 = row.try_get("seq")?;
        let body: String = row.try_get("body")?;
        match Record::from_json(&body) {
            Ok(r) => out.push(r),
            // Only possible if a newer vigil tightened the format; keep going, but loudly.
            Err(e) => {
                tracing::error!(record_seq = seq, error = %e, "Stored record no longer parses; it is left out of evaluation.")
            }
        }
    }
    Ok(out)
}

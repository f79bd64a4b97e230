//! Records, adverse-event versions, quarantine and the evaluation queue.

use super::Store;
use super::{rows_sql, select_in, KEYS_PER_QUERY};
use crate::model::{Record, SubjectHistory, SubjectId};
use anyhow::Context;
use sha2::{Digest, Sha256};
use sqlx::{Any, AssertSqlSafe, Row};
use std::collections::HashMap;

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

/// Rows per multi-row INSERT (8 binds per row at most).
const RECORDS_PER_INSERT: usize = 500;

/// A new record with its canonical text, content hash and idempotency key.
struct Keyed<'a> {
    r: &'a NewRecord,
    body: String,
    /// SHA-256 of the record as parsed (`canonical`).
    hash: String,
    /// SHA-256 of the body's text, the content hash of records stored by older versions.
    body_hash: String,
    key: String,
    /// Without a record_id: the key an older version gave the same record.
    body_key: Option<String>,
}

/// The record as vigil understands it, arms included (they never serialize on their own):
/// what makes two deliveries the same record.
fn canonical(r: &Record) -> String {
    let arm = |a: &Option<String>| a.clone().unwrap_or_default();
    let record = serde_json::to_string(r).unwrap_or_default();
    format!("{}\t{}\t{record}", arm(&r.arm), arm(&r.actual_arm))
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Store {
    /// Stores a batch in one transaction: new records, new adverse-event versions, the
    /// quarantined lines, and the subjects to evaluate. Delivering the same record again
    /// (same record_id, else same content) changes nothing.
    ///
    /// The statements are per batch, not per record (a lookup of the keys already stored,
    /// multi-row inserts): the cost of a record is its share of a few round trips.
    pub async fn store_batch(
        &self,
        records: &[NewRecord],
        rejected: &[Rejected],
    ) -> anyhow::Result<BatchOutcome> {
        let mut out = BatchOutcome::default();
        let now = self.now_ms();
        let keyed: Vec<Keyed> = records
            .iter()
            .map(|r| {
                // serde_json's map is ordered by key, so the body's text is canonical JSON;
                // the content hash goes further and hashes the record as parsed, so that
                // cosmetic variants (`3` and `3.0`, a trailing space) are the same record.
                let body = r.body.to_string();
                let hash = sha256(&canonical(&r.record));
                let body_hash = sha256(&body);
                let (key, body_key) = match &r.record.record_id {
                    Some(id) => (format!("id:{id}"), None),
                    None => (format!("sha256:{hash}"), Some(format!("sha256:{body_hash}"))),
                };
                Keyed { r, body, hash, body_hash, key, body_key }
            })
            .collect();
        let mut tx = self.begin_write().await?;
        let mut subjects: Vec<&str> = records.iter().map(|r| r.record.subject.as_str()).collect();
        subjects.sort_unstable();
        subjects.dedup();
        self.lock_subjects(&mut tx, &subjects).await?;
        let mut known: HashMap<String, String> = HashMap::new();
        // Records stored before content hashes were canonical are keyed by their body's hash.
        let lookups: Vec<&String> =
            keyed.iter().flat_map(|k| std::iter::once(&k.key).chain(&k.body_key)).collect();
        for chunk in lookups.chunks(KEYS_PER_QUERY) {
            let head = "SELECT record_key, content_hash FROM records WHERE record_key";
            for row in select_in(self.backend, head, chunk, "").fetch_all(&mut *tx).await? {
                known.insert(row.try_get("record_key")?, row.try_get("content_hash")?);
            }
        }
        // Sort out duplicates and conflicts, against the store and within the batch.
        let mut fresh: Vec<&Keyed> = Vec::new();
        for k in &keyed {
            let stored = known.get(&k.key).or_else(|| k.body_key.as_ref().and_then(|b| known.get(b)));
            match stored {
                Some(stored) if *stored == k.hash || *stored == k.body_hash => out.duplicates += 1,
                Some(_) => out.conflicts.push(Rejected {
                    source: k.r.source.clone(),
                    line: k.r.line,
                    field: "record_id".into(),
                    reason: format!(
                        "record_id `{}` was already stored with different content; \
                         send a correction under a new record_id (adverse events: same AE id)",
                        k.r.record.record_id.as_deref().unwrap_or_default()
                    ),
                    raw: k.body.clone(),
                }),
                None => {
                    known.insert(k.key.clone(), k.hash.clone());
                    fresh.push(k);
                }
            }
        }
        let mut seqs: HashMap<String, i64> = HashMap::with_capacity(fresh.len());
        for chunk in fresh.chunks(RECORDS_PER_INSERT) {
            // RETURNING gives no promise of order: map the seqs back by key.
            let sql = format!(
                "INSERT INTO records (record_key, content_hash, subject, source, received_at, body) VALUES {} \
                 RETURNING seq, record_key",
                rows_sql(self.backend, chunk.len(), 6)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for k in chunk {
                q = q
                    .bind(k.key.clone())
                    .bind(k.hash.clone())
                    .bind(k.r.record.subject.as_str().to_string())
                    .bind(format!("{}:{}", k.r.source, k.r.line))
                    .bind(now)
                    .bind(k.body.clone());
            }
            for row in q.fetch_all(&mut *tx).await.context("cannot store a record")? {
                seqs.insert(row.try_get("record_key")?, row.try_get("seq")?);
            }
        }
        let seq_of = |k: &Keyed| seqs.get(&k.key).copied().context("a stored record returned no seq");
        self.store_adverse_event_versions(&mut tx, &fresh, &seq_of, now).await?;
        // The newest seq of each subject marks what its next evaluation must see.
        let mut pending: Vec<(String, i64)> = Vec::new();
        let mut slot: HashMap<&str, usize> = HashMap::new();
        for k in &fresh {
            let subject = k.r.record.subject.as_str();
            let seq = seq_of(k)?;
            match slot.get(subject) {
                Some(&i) => pending[i].1 = pending[i].1.max(seq),
                None => {
                    slot.insert(subject, pending.len());
                    pending.push((subject.to_string(), seq));
                }
            }
        }
        for chunk in pending.chunks(RECORDS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO pending_evaluation (subject, up_to_seq) VALUES {} \
                 ON CONFLICT (subject) DO UPDATE SET up_to_seq = excluded.up_to_seq",
                rows_sql(self.backend, chunk.len(), 2)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (subject, seq) in chunk {
                q = q.bind(subject.clone()).bind(*seq);
            }
            q.execute(&mut *tx).await?;
        }
        out.stored = fresh.len();
        out.subjects = pending.into_iter().map(|(s, _)| s).collect();
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
            // A raw NUL byte cannot be stored as text (PostgreSQL): kept, escaped.
            .bind(q.raw.replace('\0', "\\u0000"))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            out.quarantined += done.rows_affected() as usize;
        }
        tx.commit().await.context("cannot commit the batch")?;
        Ok(out)
    }

    /// A new version of each adverse event whose content changed since its latest stored
    /// version (every version kept; the same content again is no version).
    async fn store_adverse_event_versions(
        &self,
        tx: &mut sqlx::Transaction<'static, Any>,
        fresh: &[&Keyed<'_>],
        seq_of: &impl Fn(&Keyed) -> anyhow::Result<i64>,
        now: i64,
    ) -> anyhow::Result<()> {
        let mut subjects: Vec<&str> = fresh
            .iter()
            .filter(|k| k.r.record.adverse_events.iter().any(|ae| ae.id.is_some()))
            .map(|k| k.r.record.subject.as_str())
            .collect();
        subjects.sort_unstable();
        subjects.dedup();
        // The latest version and content of every event of these subjects.
        let mut latest: HashMap<(String, String), (i64, String)> = HashMap::new();
        for chunk in subjects.chunks(KEYS_PER_QUERY) {
            let head =
                "SELECT subject, ae_id, version, content_hash FROM adverse_event_versions WHERE subject";
            for row in select_in(self.backend, head, chunk, "").fetch_all(&mut **tx).await? {
                let version: i64 = row.try_get("version")?;
                let key = (row.try_get("subject")?, row.try_get("ae_id")?);
                if latest.get(&key).is_none_or(|(v, _)| *v < version) {
                    latest.insert(key, (version, row.try_get("content_hash")?));
                }
            }
        }
        let mut versions = Vec::new();
        for k in fresh {
            let subject = k.r.record.subject.as_str();
            for ae in &k.r.record.adverse_events {
                let Some(ae_id) = &ae.id else { continue };
                let ae_hash = sha256(&serde_json::to_string(ae)?);
                let key = (subject.to_string(), ae_id.clone());
                let version = match latest.get(&key) {
                    Some((_, hash)) if *hash == ae_hash => continue,
                    Some((v, _)) => v + 1,
                    None => 1,
                };
                let grade = ae.grade.map(|g| i64::from(g.value()));
                versions.push((
                    key.0.clone(),
                    key.1.clone(),
                    version,
                    seq_of(k)?,
                    ae_hash.clone(),
                    grade,
                    ae.serious,
                ));
                latest.insert(key, (version, ae_hash));
            }
        }
        for chunk in versions.chunks(RECORDS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO adverse_event_versions \
                 (subject, ae_id, version, record_seq, content_hash, grade, serious, received_at) VALUES {}",
                rows_sql(self.backend, chunk.len(), 8)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (subject, ae_id, version, seq, hash, grade, serious) in chunk {
                q = q
                    .bind(subject.clone())
                    .bind(ae_id.clone())
                    .bind(*version)
                    .bind(*seq)
                    .bind(hash.clone())
                    .bind(*grade)
                    .bind(i64::from(*serious))
                    .bind(now);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Subjects whose history changed since their last evaluation, with the newest
    /// record seq seen for each, newest first: a record that just arrived (a critical
    /// event dropped during a bulk import or after a restart) is not queued behind a backlog.
    pub async fn pending_subjects(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT subject, up_to_seq FROM pending_evaluation ORDER BY up_to_seq DESC")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("subject")?, r.try_get("up_to_seq")?))).collect()
    }

    /// `pending_subjects`, for these subjects only (a lookup by key, not the whole backlog).
    pub async fn pending_subjects_of(&self, subjects: &[&str]) -> anyhow::Result<Vec<(String, i64)>> {
        let mut out: Vec<(String, i64)> = Vec::new();
        for chunk in subjects.chunks(KEYS_PER_QUERY) {
            let head = "SELECT subject, up_to_seq FROM pending_evaluation WHERE subject";
            for r in select_in(self.backend, head, chunk, "").fetch_all(&self.pool).await? {
                out.push((r.try_get("subject")?, r.try_get("up_to_seq")?));
            }
        }
        // Newest first, as the backlog is evaluated.
        out.sort_by_key(|(_, seq)| std::cmp::Reverse(*seq));
        Ok(out)
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

    /// The histories of these subjects, in one query; a subject without records has an
    /// empty history.
    pub async fn histories(&self, subjects: &[&str]) -> anyhow::Result<Vec<SubjectHistory>> {
        let mut found: HashMap<String, Vec<Record>> = HashMap::new();
        for chunk in subjects.chunks(KEYS_PER_QUERY) {
            let head = "SELECT seq, subject, body FROM records WHERE subject";
            let rows =
                select_in(self.backend, head, chunk, "ORDER BY subject, seq").fetch_all(&self.pool).await?;
            for (subject, group) in group_by_subject(&rows)? {
                found.insert(subject, decode(&group)?);
            }
        }
        subjects
            .iter()
            .map(|s| {
                let id = SubjectId::parse(s).map_err(anyhow::Error::msg)?;
                Ok(SubjectHistory::new(id, found.remove(*s).unwrap_or_default()).placed(&self.zones))
            })
            .collect()
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

    /// Whether the database answers (one trivial statement; no table is read).
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::native;

    async fn store() -> (crate::store::testing::TestDb, Store) {
        let db = crate::store::testing::TestDb::new();
        let store = Store::connect(&db.url).await.unwrap();
        (db, store)
    }

    #[tokio::test]
    async fn the_pending_subjects_of_a_few_are_looked_up_newest_first() {
        let (_db, store) = store().await;
        let text =
            "{\"subject\":\"S-1\",\"date\":\"2020-01-01\"}\n{\"subject\":\"S-2\",\"date\":\"2020-01-01\"}\n\
                    {\"subject\":\"S-3\",\"date\":\"2020-01-01\"}\n";
        let parsed = native::parse("p.ndjson", text);
        store.store_batch(&parsed.records, &parsed.rejected).await.unwrap();
        let of = store.pending_subjects_of(&["S-1", "S-3", "NOBODY"]).await.unwrap();
        let names: Vec<&str> = of.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(names, ["S-3", "S-1"]);
        assert!(of[0].1 > of[1].1);
    }

    #[tokio::test]
    async fn a_batch_sorts_out_repeats_and_conflicts_within_itself_and_across_chunks() {
        let (_dir, store) = store().await;
        // More records than one lookup or one INSERT takes, so the chunks meet.
        let mut lines: Vec<String> = (0..2_500)
            .map(|i| format!(r#"{{"subject":"S-{}","record_id":"r{i}","date":"2020-01-01"}}"#, i % 700))
            .collect();
        lines.push(r#"{"subject":"S-5","record_id":"r5","date":"2020-01-01"}"#.into()); // r5 again
        lines.push(r#"{"subject":"S-1","record_id":"r6","date":"2021-01-01"}"#.into()); // r6, other content
        lines.push(r#"{"subject":"S-9","date":"2020-02-02"}"#.into()); // no id: keyed by content
        lines.push(r#"{"date":"2020-02-02","subject":"S-9"}"#.into()); // same content
        let parsed = native::parse("batch.ndjson", &lines.join("\n"));
        let out = store.store_batch(&parsed.records, &parsed.rejected).await.unwrap();
        assert_eq!((out.stored, out.duplicates, out.conflicts.len()), (2_501, 2, 1), "{:?}", out.conflicts);
        assert_eq!(out.conflicts[0].line, 2_502);
        assert_eq!(out.subjects.len(), 700);
        assert_eq!(store.record_count().await.unwrap(), 2_501);
        assert_eq!(store.quarantine_count().await.unwrap(), 1);
        // Each subject's pending marker is its newest record.
        let pending = store.pending_subjects().await.unwrap();
        assert_eq!(pending.len(), 700);
        let newest: i64 = pending.iter().find(|(s, _)| s == "S-9").map(|(_, seq)| *seq).unwrap();
        assert_eq!(newest, 2_501);
        // A second delivery of everything changes nothing.
        let again = store.store_batch(&parsed.records, &parsed.rejected).await.unwrap();
        assert_eq!((again.stored, again.duplicates, again.conflicts.len()), (0, 2_503, 1));
        assert_eq!(store.record_count().await.unwrap(), 2_501);
    }

    #[tokio::test]
    async fn cosmetic_variants_of_a_record_without_id_are_the_same_record() {
        let (_dir, store) = store().await;
        let first = native::parse(
            "a",
            r#"{"subject":"S-1","site":"KS","date":"2020-01-01","scores":[{"name":"EDSS","value":3}]}"#,
        );
        store.store_batch(&first.records, &first.rejected).await.unwrap();
        // `3.0` for `3`, a padded site, other key order: the same record, stored once.
        let again = native::parse(
            "b",
            r#"{"scores":[{"value":3.0,"name":"EDSS"}],"date":"2020-01-01","site":"KS ","subject":"S-1"}"#,
        );
        let out = store.store_batch(&again.records, &again.rejected).await.unwrap();
        assert_eq!((out.stored, out.duplicates), (0, 1));
        // Another arm is another record.
        let other = native::parse(
            "c",
            r#"{"subject":"S-1","arm":"B","site":"KS","date":"2020-01-01","scores":[{"name":"EDSS","value":3}]}"#,
        );
        assert_eq!(store.store_batch(&other.records, &other.rejected).await.unwrap().stored, 1);
        assert_eq!(store.record_count().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_record_stored_under_its_body_hash_by_an_older_version_is_recognised() {
        let (_dir, store) = store().await;
        let line = r#"{"subject":"S-1","date":"2020-01-01"}"#;
        let parsed = native::parse("a", line);
        let body = parsed.records[0].body.to_string();
        let legacy = sha256(&body);
        sqlx::query(
            "INSERT INTO records (record_key, content_hash, subject, source, received_at, body) \
             VALUES ($1, $2, 'S-1', 'old', 0, $3)",
        )
        .bind(format!("sha256:{legacy}"))
        .bind(&legacy)
        .bind(&body)
        .execute(&store.pool)
        .await
        .unwrap();
        let out = store.store_batch(&parsed.records, &parsed.rejected).await.unwrap();
        assert_eq!((out.stored, out.duplicates), (0, 1));
    }

    #[tokio::test]
    async fn adverse_event_versions_count_changes_within_a_batch_and_across_batches() {
        let (_dir, store) = store().await;
        let ae = |rid: &str, grade: u8| {
            format!(
                r#"{{"subject":"S-1","record_id":"{rid}","adverse_events":[{{"id":"AE-1","term":"Rash","grade":{grade}}}]}}"#
            )
        };
        let first = native::parse("a", &[ae("a", 1), ae("b", 1), ae("c", 2)].join("\n"));
        store.store_batch(&first.records, &first.rejected).await.unwrap();
        assert_eq!(store.adverse_event_versions("S-1", "AE-1").await.unwrap(), 2);
        let second = native::parse("b", &[ae("d", 2), ae("e", 3)].join("\n"));
        store.store_batch(&second.records, &second.rejected).await.unwrap();
        assert_eq!(store.adverse_event_versions("S-1", "AE-1").await.unwrap(), 3);
        assert_eq!(store.history("S-1").await.unwrap().adverse_events()[0].grade.unwrap().value(), 3);
    }
}

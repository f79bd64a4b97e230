//! The questions the console's pages ask that no other part of vigil does: a subject's
//! adverse-event versions, how often each rule fired and how fast it was acknowledged, the
//! silences with who ended them, and a filtered, paginated view of the audit trail.

use super::{opt_text, to_time, Store};
use crate::audit::Entry;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// One stored version of an adverse event (the store keeps every version sent).
#[derive(Debug, Clone, PartialEq)]
pub struct AeVersion {
    pub ae_id: String,
    pub version: i64,
    pub grade: Option<i64>,
    pub serious: bool,
    pub received_at: DateTime<Utc>,
}

/// How often one rule fired.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleActivity {
    pub rule_id: String,
    pub alerts: i64,
    /// Distinct subjects alerted on (cohort alerts have none).
    pub subjects: i64,
    pub last_raised: Option<DateTime<Utc>>,
}

/// A silence with how it ended.
#[derive(Debug, Clone)]
pub struct SilenceEntry {
    pub id: i64,
    pub rule_id: Option<String>,
    pub subject: Option<String>,
    pub site: Option<String>,
    pub comment: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_by: Option<String>,
}

/// What the audit page searches for; every field is optional.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// The entry is about this subject: its entity id, or its detail names it.
    pub subject: Option<String>,
    /// Part of the actor (`dr.safety` finds `user:dr.safety`).
    pub actor: Option<String>,
    /// Part of the action (`sign` finds `signed in` and `sign-in refused`).
    pub action: Option<String>,
    /// Entry time in `[from_ms, to_ms)`.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

/// `%text%` for LIKE, with LIKE's own characters taken literally (ESCAPE '\').
fn contains(text: &str) -> String {
    let mut out = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl AuditQuery {
    /// The WHERE clause and its values, numbered from $1.
    fn clause(&self) -> (String, Vec<SqlValue>) {
        let mut parts: Vec<String> = Vec::new();
        let mut values: Vec<SqlValue> = Vec::new();
        let next = |v: SqlValue, values: &mut Vec<SqlValue>| {
            values.push(v);
            format!("${}", values.len())
        };
        if let Some(s) = &self.subject {
            let exact = next(SqlValue::Text(s.clone()), &mut values);
            let under = next(SqlValue::Text(format!("{}/%", contains(s).trim_matches('%'))), &mut values);
            let named = next(SqlValue::Text(contains(s)), &mut values);
            parts.push(format!(
                "(entity_id = {exact} OR entity_id LIKE {under} ESCAPE '\\' OR detail LIKE {named} ESCAPE '\\')"
            ));
        }
        if let Some(a) = &self.actor {
            let p = next(SqlValue::Text(contains(a)), &mut values);
            parts.push(format!("actor LIKE {p} ESCAPE '\\'"));
        }
        if let Some(a) = &self.action {
            let p = next(SqlValue::Text(contains(a)), &mut values);
            parts.push(format!("action LIKE {p} ESCAPE '\\'"));
        }
        if let Some(f) = self.from_ms {
            let p = next(SqlValue::Int(f), &mut values);
            parts.push(format!("at >= {p}"));
        }
        if let Some(t) = self.to_ms {
            let p = next(SqlValue::Int(t), &mut values);
            parts.push(format!("at < {p}"));
        }
        let clause = if parts.is_empty() { String::new() } else { format!("WHERE {}", parts.join(" AND ")) };
        (clause, values)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum SqlValue {
    Text(String),
    Int(i64),
}

fn bind<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    values: &[SqlValue],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for v in values {
        q = match v {
            SqlValue::Text(t) => q.bind(t.clone()),
            SqlValue::Int(i) => q.bind(*i),
        };
    }
    q
}

fn entry(row: &sqlx::any::AnyRow) -> anyhow::Result<Entry> {
    Ok(Entry {
        seq: row.try_get("seq")?,
        at: to_time(row.try_get("at")?),
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        entity: row.try_get("entity")?,
        entity_id: row.try_get("entity_id")?,
        detail: row.try_get("detail")?,
        pos: row.try_get("pos")?,
        prev_hash: opt_text(row, "prev_hash"),
        hash: opt_text(row, "hash"),
    })
}

impl Store {
    /// Every stored version of every adverse event of `subject`, by event then version.
    pub async fn ae_versions_of(&self, subject: &str) -> anyhow::Result<Vec<AeVersion>> {
        let rows = sqlx::query(
            "SELECT ae_id, version, grade, serious, received_at FROM adverse_event_versions \
             WHERE subject = $1 ORDER BY ae_id, version",
        )
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AeVersion {
                    ae_id: r.try_get("ae_id")?,
                    version: r.try_get("version")?,
                    grade: r.try_get("grade")?,
                    serious: r.try_get::<i64, _>("serious")? != 0,
                    received_at: to_time(r.try_get("received_at")?),
                })
            })
            .collect()
    }

    /// Alerts, subjects alerted on and the last time raised, per rule that ever fired.
    pub async fn rule_activity(&self) -> anyhow::Result<Vec<RuleActivity>> {
        let rows = sqlx::query(
            "SELECT rule_id, COUNT(*) AS n, COUNT(DISTINCT CASE WHEN subject <> '' THEN subject END) AS s, \
             MAX(raised_at) AS last FROM alerts GROUP BY rule_id ORDER BY rule_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RuleActivity {
                    rule_id: r.try_get("rule_id")?,
                    alerts: r.try_get("n")?,
                    subjects: r.try_get("s")?,
                    last_raised: r.try_get::<Option<i64>, _>("last")?.map(to_time),
                })
            })
            .collect()
    }

    /// (rule id, milliseconds from raise to first acknowledgement) of every acknowledged
    /// alert.
    pub async fn acknowledgement_delays(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT a.rule_id AS rule_id, MIN(e.at) - a.raised_at AS ms FROM alerts a \
             JOIN alert_events e ON e.alert_id = a.id WHERE e.action = 'acknowledged' \
             GROUP BY a.id, a.rule_id, a.raised_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("rule_id")?, r.try_get("ms")?))).collect()
    }

    /// How many subjects have at least one record.
    pub async fn subject_count(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query("SELECT COUNT(DISTINCT subject) AS n FROM records")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    /// Every silence, newest first, with who ended it and when.
    pub async fn silence_entries(&self) -> anyhow::Result<Vec<SilenceEntry>> {
        let rows = sqlx::query(
            "SELECT id, rule_id, subject, site, comment, created_by, created_at, expires_at, ended_at, ended_by \
             FROM silences ORDER BY id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SilenceEntry {
                    id: r.try_get("id")?,
                    rule_id: opt_text(r, "rule_id"),
                    subject: opt_text(r, "subject"),
                    site: opt_text(r, "site"),
                    comment: r.try_get("comment")?,
                    created_by: r.try_get("created_by")?,
                    created_at: to_time(r.try_get("created_at")?),
                    expires_at: to_time(r.try_get("expires_at")?),
                    ended_at: r.try_get::<Option<i64>, _>("ended_at")?.map(to_time),
                    ended_by: opt_text(r, "ended_by"),
                })
            })
            .collect()
    }

    /// One page of the audit entries matching `q`, newest first, and how many match.
    pub async fn audit_search(
        &self,
        q: &AuditQuery,
        offset: i64,
        limit: i64,
    ) -> anyhow::Result<(Vec<Entry>, i64)> {
        let (clause, values) = q.clause();
        let count_sql = format!("SELECT COUNT(*) AS n FROM audit_log {clause}");
        let total: i64 = bind(sqlx::query(sqlx::AssertSqlSafe(count_sql)), &values)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let n = values.len();
        let sql = format!(
            "SELECT seq, at, actor, action, entity, entity_id, detail, pos, prev_hash, hash FROM audit_log \
             {clause} ORDER BY seq DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let rows = bind(sqlx::query(sqlx::AssertSqlSafe(sql)), &values)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        Ok((rows.iter().map(entry).collect::<anyhow::Result<_>>()?, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_characters_in_a_search_are_taken_literally() {
        assert_eq!(contains("KS_7%"), "%KS\\_7\\%%");
        assert_eq!(contains("a\\b"), "%a\\\\b%");
    }

    #[test]
    fn an_audit_query_numbers_its_values_in_order() {
        let q = AuditQuery {
            subject: Some("KS-701".into()),
            actor: Some("dr.safety".into()),
            to_ms: Some(5),
            ..Default::default()
        };
        let (clause, values) = q.clause();
        assert!(clause.contains("entity_id = $1"), "{clause}");
        assert!(clause.contains("actor LIKE $4"), "{clause}");
        assert!(clause.contains("at < $5"), "{clause}");
        assert_eq!(values.len(), 5);
        assert_eq!(values[1], SqlValue::Text("KS-701/%".into()));
        assert_eq!(AuditQuery::default().clause(), (String::new(), Vec::new()));
    }
}

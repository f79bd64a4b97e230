//! Alert persistence: loads what the alert policy (`crate::alerts`) needs to decide and
//! records what it decided — each new alert with its outbox rows, each transition with
//! who and when — in one transaction per evaluation or transition.

use super::NotificationKind;
use super::{opt_text, rows_sql, select_in, to_time, Backend, Store, KEYS_PER_QUERY};
use crate::alerts::lifecycle::{self, parse_severity, AlertStatus, Transition, TransitionError};
use crate::alerts::policy::{self, Part};
use crate::alerts::silence::{self, Silence};
use crate::alerts::{NewAlert, Recipient, StillFiring};
use crate::rules::Severity;
use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};
use std::collections::{HashMap, HashSet};

/// A subject's part in a cohort rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CohortContribution {
    pub rule_id: String,
    pub evaluable: bool,
    pub matching: bool,
    pub events: i64,
}

/// A cohort rule's totals over every subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CohortTotals {
    pub evaluable: i64,
    pub matching: i64,
    pub events: i64,
    pub subjects: Vec<String>,
}

/// What one evaluation wants recorded, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Evaluation<'a> {
    /// The subject evaluated and the newest record seq the evaluation saw (clears the
    /// pending mark up to there); None for cohort judgments and clock passes.
    pub pending: Option<(&'a str, i64)>,
    /// The subject whose contributions and resolutions these are ("" for the cohort).
    pub subject: &'a str,
    pub alerts: Vec<NewAlert>,
    pub contributions: Vec<CohortContribution>,
    pub still_firing: Vec<StillFiring>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertRow {
    pub id: i64,
    pub rule_id: String,
    pub rule_version: String,
    pub subject: String,
    pub site: Option<String>,
    pub episode: String,
    pub level: i64,
    pub severity: Severity,
    pub title: String,
    pub summary: String,
    pub evidence: serde_json::Value,
    pub status: AlertStatus,
    pub raised_at: DateTime<Utc>,
    /// When its finding happened clinically (alerts stored before 0007 have none).
    pub clinical_time: Option<DateTime<Utc>>,
    pub escalation_step: i64,
    pub next_escalation_at: Option<DateTime<Utc>>,
}

impl AlertRow {
    /// What a signature on this alert signs: what fired and why, not its changing status.
    pub fn signed_content(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "rule_id": self.rule_id,
            "rule_version": self.rule_version,
            "subject": self.subject,
            "site": self.site,
            "episode": self.episode,
            "level": self.level,
            "severity": self.severity.as_str(),
            "title": self.title,
            "summary": self.summary,
            "evidence": self.evidence,
            "raised_at": self.raised_at.timestamp_millis(),
        })
    }
}

/// One transition of an alert.
#[derive(Debug, Clone, Serialize)]
pub struct AlertEvent {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub comment: Option<String>,
    /// The electronic signature the action was taken with, if it was signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<crate::accounts::Signature>,
}

/// A SELECT over every alert column; the tail (WHERE/ORDER) must be a literal.
macro_rules! select_alerts {
    ($tail:literal) => {
        concat!(
            "SELECT id, rule_id, rule_version, subject, site, episode, level, severity, title, summary, \
             evidence, status, raised_at, clinical_time, escalation_step, next_escalation_at FROM alerts ",
            $tail
        )
    };
}

fn alert_row(r: &AnyRow) -> anyhow::Result<AlertRow> {
    let evidence: String = r.try_get("evidence")?;
    Ok(AlertRow {
        id: r.try_get("id")?,
        rule_id: r.try_get("rule_id")?,
        rule_version: r.try_get("rule_version")?,
        subject: r.try_get("subject")?,
        site: opt_text(r, "site"),
        episode: r.try_get("episode")?,
        level: r.try_get("level")?,
        severity: parse_severity(&r.try_get::<String, _>("severity")?)?,
        title: r.try_get("title")?,
        summary: r.try_get("summary")?,
        evidence: serde_json::from_str(&evidence).unwrap_or(serde_json::Value::Null),
        status: r.try_get::<String, _>("status")?.parse()?,
        raised_at: to_time(r.try_get("raised_at")?),
        clinical_time: r.try_get::<Option<i64>, _>("clinical_time")?.map(to_time),
        escalation_step: r.try_get("escalation_step")?,
        next_escalation_at: r.try_get::<Option<i64>, _>("next_escalation_at")?.map(to_time),
    })
}

fn silence_row(r: &AnyRow) -> anyhow::Result<Silence> {
    Ok(Silence {
        id: r.try_get("id")?,
        rule_id: opt_text(r, "rule_id"),
        subject: opt_text(r, "subject"),
        site: opt_text(r, "site"),
        comment: r.try_get("comment")?,
        created_by: r.try_get("created_by")?,
        created_at: to_time(r.try_get("created_at")?),
        expires_at: to_time(r.try_get("expires_at")?),
        ended: r.try_get::<Option<i64>, _>("ended_at")?.is_some(),
    })
}

async fn event(
    tx: &mut Transaction<'_, Any>,
    at_ms: i64,
    alert_id: i64,
    actor: &str,
    action: &str,
    comment: Option<&str>,
) -> anyhow::Result<()> {
    signed_event(tx, at_ms, alert_id, actor, action, comment, None).await
}

async fn signed_event(
    tx: &mut Transaction<'_, Any>,
    at_ms: i64,
    alert_id: i64,
    actor: &str,
    action: &str,
    comment: Option<&str>,
    signature_id: Option<i64>,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO alert_events (alert_id, at, actor, action, comment, signature_id) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(alert_id)
    .bind(at_ms)
    .bind(actor)
    .bind(action)
    .bind(comment)
    .bind(signature_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Where a notification goes and when.
struct Enqueue<'a> {
    kind: NotificationKind,
    recipients: &'a [Recipient],
    at_ms: i64,
    group: Option<&'a str>,
}

/// Queues one notification per recipient.
async fn enqueue(
    tx: &mut Transaction<'_, Any>,
    now_ms: i64,
    alert_id: i64,
    notice: Enqueue<'_>,
    message_domain: &str,
) -> anyhow::Result<()> {
    // Message-IDs: unique per notification, stable across retries of the same row.
    let first: i64 = sqlx::query("SELECT COUNT(*) AS n FROM notifications WHERE alert_id = $1")
        .bind(alert_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;
    for (i, r) in notice.recipients.iter().enumerate() {
        let n = first + i as i64;
        sqlx::query(
            "INSERT INTO notifications (alert_id, role, recipient, blinded, message_id, status, attempts, \
             next_attempt_at, created_at, kind, group_key) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $7, $8, $9)",
        )
        .bind(alert_id)
        .bind(&r.role)
        .bind(&r.address)
        .bind(i64::from(r.blinded))
        .bind(format!("<vigil.alert-{alert_id}.{n}@{message_domain}>"))
        .bind(notice.at_ms)
        .bind(now_ms)
        .bind(notice.kind.as_str())
        .bind(notice.group.map(|g| format!("{g}|{}", r.address)))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Every silence not yet ended (whether still in force is for `alerts::silence` to say).
async fn unended_silences(tx: &mut Transaction<'_, Any>) -> anyhow::Result<Vec<Silence>> {
    let rows = sqlx::query(
        "SELECT id, rule_id, subject, site, comment, created_by, created_at, expires_at, ended_at \
         FROM silences WHERE ended_at IS NULL ORDER BY id",
    )
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(silence_row).collect()
}

/// What is already recorded about the alerts of the subjects being committed.
/// The event of a first resolve of a critical alert that waits for a second person.
pub const RESOLUTION_REQUESTED: &str = "resolution requested";

#[derive(Default)]
struct KnownAlerts {
    /// (rule, subject, episode) → the highest level raised.
    highest: HashMap<(String, String, String), i64>,
    /// (rule, subject) → the alerts (id, episode) still in force.
    in_force: HashMap<(String, String), Vec<(i64, String)>>,
    /// (rule, subject, episode) → the newest alert (id, status).
    latest: HashMap<(String, String, String), (i64, AlertStatus)>,
}

/// Why an evaluation changed an alert, with who changed the data: the newest record the
/// evaluation saw and its source ("… after record 12 from visits.ndjson:3"), or the clock.
async fn because(
    tx: &mut Transaction<'_, Any>,
    what: &str,
    pending: Option<(&str, i64)>,
) -> anyhow::Result<String> {
    Ok(match pending {
        Some((_, seq)) => match newest_source(tx, seq).await? {
            Some(source) => format!("{what} after record {seq} from {source}"),
            None => what.to_string(),
        },
        None => format!("{what} (clock)"),
    })
}

/// Where a stored record came from (`file:line`, `http:TOKEN-NAME:line`).
async fn newest_source(tx: &mut Transaction<'_, Any>, seq: i64) -> anyhow::Result<Option<String>> {
    Ok(sqlx::query("SELECT source FROM records WHERE seq = $1")
        .bind(seq)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| r.try_get("source"))
        .transpose()?)
}

fn status_of(r: &AnyRow) -> anyhow::Result<AlertStatus> {
    Ok(r.try_get::<String, _>("status")?.parse()?)
}

impl Store {
    /// Records one evaluation in a single transaction (see `commit_evaluations`).
    pub async fn commit_evaluation(
        &self,
        e: Evaluation<'_>,
        message_domain: &str,
    ) -> anyhow::Result<Vec<i64>> {
        self.commit_evaluations(vec![e], message_domain).await
    }

    /// Records evaluations in a single transaction: cohort contributions, the alerts not
    /// raised before (silenced ones stay quiet), their outbox rows, the resolution of
    /// alerts whose condition is gone, and the end of each subject's pending evaluation.
    /// Returns the ids of the new alerts.
    ///
    /// What the decisions need is read once for all the subjects (their contributions and
    /// alerts), so a subject that changes nothing costs its share of a few statements.
    pub async fn commit_evaluations(
        &self,
        evaluations: Vec<Evaluation<'_>>,
        message_domain: &str,
    ) -> anyhow::Result<Vec<i64>> {
        let now = self.now();
        let now_ms = now.timestamp_millis();
        let mut subjects: Vec<&str> = evaluations.iter().map(|e| e.subject).collect();
        subjects.sort_unstable();
        subjects.dedup();
        let mut tx = self.begin_write().await?;
        // Before anything is read: what is read below (alerts, contributions) is then
        // what the commit changes, whoever else evaluates these subjects.
        self.lock_subjects(&mut tx, &subjects).await?;
        // An evaluation of a history that has grown since its pending mark was read may
        // have missed a record (or run behind a newer evaluation already committed): its
        // contributions and resolutions wait for the evaluation that follows, which the
        // pending mark kept (or put back) guarantees. Its new alerts stand: real findings.
        let grown = self.grown_since(&mut tx, &evaluations).await?;
        let mut evaluations = evaluations;
        for e in evaluations.iter_mut().filter(|e| e.pending.is_some_and(|(s, _)| grown.contains(s))) {
            e.contributions.clear();
            e.still_firing.clear();
        }
        let mut known = self.known_alerts(&mut tx, &subjects).await?;
        let mut highest = known.highest;
        self.record_contributions(&mut tx, &evaluations, &subjects).await?;
        let any_alert = evaluations.iter().any(|e| !e.alerts.is_empty());
        let silences = if any_alert { unended_silences(&mut tx).await? } else { Vec::new() };
        let mut raised = Vec::new();
        let found: Vec<(&Evaluation<'_>, &NewAlert)> =
            evaluations.iter().flat_map(|e| e.alerts.iter().map(move |a| (e, a))).collect();
        for (e, a) in found {
            let key = (a.rule_id.clone(), a.subject.clone(), a.episode.clone());
            if !policy::raises_alert(a.level, highest.get(&key).copied()) {
                // Not news, unless its alert was resolved: then the condition is back (or
                // was never gone), and the alert opens again.
                if let Some(&(id, status)) = known.latest.get(&key) {
                    if Transition::Recur.apply(status).is_some() {
                        let why = because(&mut tx, "condition still present", e.pending).await?;
                        let silence = silence::matching(&silences, a.target(), now).map(|s| s.id);
                        self.recur(&mut tx, now_ms, id, a, silence, &why, message_domain).await?;
                        known.latest.insert(key, (id, lifecycle::raised(silence.is_some())));
                        raised.push(id);
                    }
                }
                continue;
            }
            highest.insert(key, a.level);
            let silence = silence::matching(&silences, a.target(), now).map(|s| s.id);
            let status = lifecycle::raised(silence.is_some());
            let id: i64 = sqlx::query(
                "INSERT INTO alerts (rule_id, rule_version, subject, site, episode, level, severity, title, \
                 summary, evidence, status, raised_at, next_escalation_at, silence_id, updated_at, clinical_time) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $12, $15) RETURNING id",
            )
            .bind(&a.rule_id)
            .bind(&a.rule_version)
            .bind(&a.subject)
            .bind(a.site.as_deref())
            .bind(&a.episode)
            .bind(a.level)
            .bind(a.severity.as_str())
            .bind(&a.title)
            .bind(&a.summary)
            .bind(a.evidence.to_string())
            .bind(status.as_str())
            .bind(now_ms)
            .bind(if silence.is_some() { None } else { a.delivery.escalate_at.map(|t| t.timestamp_millis()) })
            .bind(silence)
            .bind(a.clinical_time.map(|t| t.timestamp_millis()))
            .fetch_one(&mut *tx)
            .await
            .context("cannot store an alert")?
            .try_get("id")?;
            event(&mut tx, now_ms, id, "vigil", "raised", None).await?;
            match silence {
                Some(s) => {
                    let why = format!("by silence #{s}");
                    event(&mut tx, now_ms, id, "vigil", Transition::Silence.action(), Some(&why)).await?
                }
                None => {
                    let notice = Enqueue {
                        kind: NotificationKind::Alert,
                        recipients: &a.recipients,
                        at_ms: a.delivery.notify_at.timestamp_millis(),
                        group: Some(&a.delivery.group),
                    };
                    enqueue(&mut tx, now_ms, id, notice, message_domain).await?
                }
            }
            raised.push(id);
        }
        for e in &evaluations {
            for s in &e.still_firing {
                let key = (s.rule_id.clone(), e.subject.to_string());
                let Some(in_force) = known.in_force.get(&key) else { continue };
                for id in policy::gone(in_force, &s.episodes) {
                    let why = because(&mut tx, "condition no longer present", e.pending).await?;
                    self.auto_resolve(&mut tx, now_ms, id, s, &why, message_domain).await?;
                }
            }
        }
        let done: Vec<(&str, i64)> = evaluations.iter().filter_map(|e| e.pending).collect();
        for chunk in done.chunks(KEYS_PER_QUERY / 2) {
            // Only up to what the evaluation saw: a record stored meanwhile stays pending.
            let clauses: Vec<String> = (0..chunk.len())
                .map(|i| match self.backend {
                    Backend::Sqlite => "(subject = ? AND up_to_seq <= ?)".to_string(),
                    Backend::Postgres => {
                        format!("(subject = ${} AND up_to_seq <= ${})", 2 * i + 1, 2 * i + 2)
                    }
                })
                .collect();
            let sql = format!("DELETE FROM pending_evaluation WHERE {}", clauses.join(" OR "));
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (subject, up_to_seq) in chunk {
                q = q.bind(subject.to_string()).bind(*up_to_seq);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await.context("cannot commit the evaluation")?;
        Ok(raised)
    }

    /// The subjects of these evaluations with a record newer than the pending mark the
    /// evaluation started from; each is marked pending again up to its newest record.
    async fn grown_since(
        &self,
        tx: &mut Transaction<'static, Any>,
        evaluations: &[Evaluation<'_>],
    ) -> anyhow::Result<HashSet<String>> {
        let seen: HashMap<&str, i64> = evaluations.iter().filter_map(|e| e.pending).collect();
        let names: Vec<&str> = seen.keys().copied().collect();
        let mut grown = Vec::new();
        for chunk in names.chunks(KEYS_PER_QUERY) {
            let head = "SELECT subject, MAX(seq) AS top FROM records WHERE subject";
            for row in select_in(self.backend, head, chunk, "GROUP BY subject").fetch_all(&mut **tx).await? {
                let (subject, top): (String, i64) = (row.try_get("subject")?, row.try_get("top")?);
                if seen.get(subject.as_str()).is_some_and(|&seq| top > seq) {
                    grown.push((subject, top));
                }
            }
        }
        for (subject, top) in &grown {
            sqlx::query(
                "INSERT INTO pending_evaluation (subject, up_to_seq) VALUES ($1, $2) ON CONFLICT (subject) \
                 DO UPDATE SET up_to_seq = excluded.up_to_seq WHERE pending_evaluation.up_to_seq < excluded.up_to_seq",
            )
            .bind(subject)
            .bind(*top)
            .execute(&mut **tx)
            .await?;
        }
        Ok(grown.into_iter().map(|(s, _)| s).collect())
    }

    /// The alerts already raised for these subjects: the highest level of each episode
    /// (a finding raises an alert only above it), and per rule and subject the alerts a
    /// vanished finding resolves.
    async fn known_alerts(
        &self,
        tx: &mut Transaction<'static, Any>,
        subjects: &[&str],
    ) -> anyhow::Result<KnownAlerts> {
        let mut known = KnownAlerts::default();
        for chunk in subjects.chunks(KEYS_PER_QUERY) {
            let head = "SELECT id, rule_id, subject, episode, level, status FROM alerts WHERE subject";
            for row in select_in(self.backend, head, chunk, "ORDER BY id").fetch_all(&mut **tx).await? {
                let (rule_id, subject, episode): (String, String, String) =
                    (row.try_get("rule_id")?, row.try_get("subject")?, row.try_get("episode")?);
                let level: i64 = row.try_get("level")?;
                let key = (rule_id.clone(), subject.clone(), episode.clone());
                let top = known.highest.entry(key.clone()).or_insert(level);
                *top = (*top).max(level);
                let status = status_of(&row)?;
                known.latest.insert(key, (row.try_get("id")?, status));
                if Transition::AutoResolve.apply(status).is_some() {
                    known.in_force.entry((rule_id, subject)).or_default().push((row.try_get("id")?, episode));
                }
            }
        }
        Ok(known)
    }

    /// Each subject's part in the cohort rules, and the running totals moved by what
    /// changed (a single UPDATE … + delta per rule).
    async fn record_contributions(
        &self,
        tx: &mut Transaction<'static, Any>,
        evaluations: &[Evaluation<'_>],
        subjects: &[&str],
    ) -> anyhow::Result<()> {
        if evaluations.iter().all(|e| e.contributions.is_empty()) {
            return Ok(());
        }
        let mut before: HashMap<(String, String), Part> = HashMap::new();
        for chunk in subjects.chunks(KEYS_PER_QUERY) {
            let head = "SELECT rule_id, subject, evaluable, matching, events FROM cohort_contributions WHERE subject";
            for r in select_in(self.backend, head, chunk, "").fetch_all(&mut **tx).await? {
                let part = Part {
                    evaluable: r.try_get::<i64, _>("evaluable")? != 0,
                    matching: r.try_get::<i64, _>("matching")? != 0,
                    events: r.try_get("events")?,
                };
                before.insert((r.try_get("rule_id")?, r.try_get("subject")?), part);
            }
        }
        let mut changed: Vec<(&str, &CohortContribution)> = Vec::new();
        let mut totals: Vec<(&str, (i64, i64, i64))> = Vec::new();
        for e in evaluations {
            for c in &e.contributions {
                let part = Part { evaluable: c.evaluable, matching: c.matching, events: c.events };
                let was = before.get(&(c.rule_id.clone(), e.subject.to_string())).copied();
                let Some((d_evaluable, d_matching, d_events)) = policy::totals_delta(was, part) else {
                    continue;
                };
                changed.push((e.subject, c));
                match totals.iter_mut().find(|(rule, _)| *rule == c.rule_id) {
                    Some((_, t)) => *t = (t.0 + d_evaluable, t.1 + d_matching, t.2 + d_events),
                    None => totals.push((&c.rule_id, (d_evaluable, d_matching, d_events))),
                }
            }
        }
        for chunk in changed.chunks(KEYS_PER_QUERY / 5) {
            let sql = format!(
                "INSERT INTO cohort_contributions (rule_id, subject, evaluable, matching, events) VALUES {} \
                 ON CONFLICT (rule_id, subject) DO UPDATE SET \
                 evaluable = excluded.evaluable, matching = excluded.matching, events = excluded.events",
                rows_sql(self.backend, chunk.len(), 5)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (subject, c) in chunk {
                q = q
                    .bind(c.rule_id.clone())
                    .bind(subject.to_string())
                    .bind(i64::from(c.evaluable))
                    .bind(i64::from(c.matching))
                    .bind(c.events);
            }
            q.execute(&mut **tx).await?;
        }
        // In rule order: two commits moving the same rules lock their rows in one order.
        totals.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (rule_id, (d_evaluable, d_matching, d_events)) in totals {
            sqlx::query(
                "INSERT INTO cohort_totals (rule_id, evaluable, matching, events) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (rule_id) DO UPDATE SET evaluable = cohort_totals.evaluable + excluded.evaluable, \
                 matching = cohort_totals.matching + excluded.matching, events = cohort_totals.events + excluded.events",
            )
            .bind(rule_id)
            .bind(d_evaluable)
            .bind(d_matching)
            .bind(d_events)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// A resolved alert whose condition is present: open again (or silenced, if a silence
    /// covers it now), its recipients told again, its escalation started again.
    #[allow(clippy::too_many_arguments)]
    async fn recur(
        &self,
        tx: &mut Transaction<'static, Any>,
        now_ms: i64,
        id: i64,
        a: &NewAlert,
        silence: Option<i64>,
        why: &str,
        message_domain: &str,
    ) -> anyhow::Result<()> {
        let status = lifecycle::raised(silence.is_some());
        sqlx::query(
            "UPDATE alerts SET status = $3, next_escalation_at = $4, escalation_step = 0, silence_id = $5, \
             updated_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms)
        .bind(status.as_str())
        .bind(if silence.is_some() { None } else { a.delivery.escalate_at.map(|t| t.timestamp_millis()) })
        .bind(silence)
        .execute(&mut **tx)
        .await?;
        event(tx, now_ms, id, "vigil", Transition::Recur.action(), Some(why)).await?;
        match silence {
            Some(s) => {
                let why = format!("by silence #{s}");
                event(tx, now_ms, id, "vigil", Transition::Silence.action(), Some(&why)).await
            }
            None => {
                let notice = Enqueue {
                    kind: NotificationKind::Alert,
                    recipients: &a.recipients,
                    at_ms: a.delivery.notify_at.timestamp_millis().max(now_ms),
                    group: Some(&a.delivery.group),
                };
                enqueue(tx, now_ms, id, notice, message_domain).await
            }
        }
    }

    async fn auto_resolve(
        &self,
        tx: &mut Transaction<'static, Any>,
        now_ms: i64,
        id: i64,
        s: &StillFiring,
        why: &str,
        message_domain: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE alerts SET status = $3, next_escalation_at = NULL, updated_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms)
        .bind(AlertStatus::Resolved.as_str())
        .execute(&mut **tx)
        .await?;
        let action = Transition::AutoResolve.action();
        event(tx, now_ms, id, "vigil", action, Some(why)).await?;
        let notice = Enqueue {
            kind: NotificationKind::Resolved,
            recipients: &s.resolved_notice,
            at_ms: now_ms,
            group: None,
        };
        enqueue(tx, now_ms, id, notice, message_domain).await
    }

    /// A person acknowledges (stops escalation) or resolves an alert, recorded with who
    /// and why. Other transitions are vigil's own and refused here.
    pub async fn transition(
        &self,
        id: i64,
        transition: Transition,
        actor: &str,
        comment: Option<&str>,
    ) -> anyhow::Result<AlertRow> {
        self.transition_by(id, transition, actor, comment, false).await
    }

    /// `transition`, where the study may ask a second person to confirm the resolution of
    /// a critical alert: the first resolve is recorded as a request (the alert stays as it
    /// is), and a resolve by a different actor after it resolves the alert.
    pub async fn transition_by(
        &self,
        id: i64,
        transition: Transition,
        actor: &str,
        comment: Option<&str>,
        second_person_resolves_critical: bool,
    ) -> anyhow::Result<AlertRow> {
        self.transition_signed(id, transition, actor, comment, second_person_resolves_critical, None).await
    }

    /// `transition_by` with an electronic signature, recorded in the same transaction as
    /// the action it signs (both or neither).
    pub async fn transition_signed(
        &self,
        id: i64,
        transition: Transition,
        actor: &str,
        comment: Option<&str>,
        second_person_resolves_critical: bool,
        signature: Option<&crate::accounts::NewSignature>,
    ) -> anyhow::Result<AlertRow> {
        let now_ms = self.now_ms();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT status, severity, updated_at FROM alerts WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(TransitionError::NotFound(id))?;
        let status = status_of(&row)?;
        // A critical alert is closed by a person only with a reason on the record.
        let critical = parse_severity(&row.try_get::<String, _>("severity")?)? == Severity::Critical;
        if critical && transition == Transition::Resolve && comment.is_none_or(|c| c.trim().is_empty()) {
            return Err(TransitionError::ReasonRequired(id).into());
        }
        let to = match transition {
            Transition::Acknowledge | Transition::Resolve => transition.check(id, status)?,
            _ => {
                return Err(TransitionError::NotAllowed { id, status, action: transition.action() }.into());
            }
        };
        let mut confirming = None;
        if critical && transition == Transition::Resolve && second_person_resolves_critical {
            // A request made since the alert last changed, by someone else.
            let since: i64 = row.try_get("updated_at")?;
            let requested: Option<String> = sqlx::query(
                "SELECT actor FROM alert_events WHERE alert_id = $1 AND action = $2 AND at >= $3 AND actor <> $4 \
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(id)
            .bind(RESOLUTION_REQUESTED)
            .bind(since)
            .bind(actor)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("actor"))
            .transpose()?;
            match requested {
                Some(first) => confirming = Some(first),
                None => {
                    let signed = super::accounts::insert_signature_of(&mut tx, signature).await?;
                    signed_event(&mut tx, now_ms, id, actor, RESOLUTION_REQUESTED, comment, signed).await?;
                    tx.commit().await?;
                    return self.alert(id).await?.ok_or_else(|| TransitionError::NotFound(id).into());
                }
            }
        }
        let comment = match (&confirming, comment) {
            (Some(first), Some(c)) => Some(format!("{c} (confirming the resolution asked by {first})")),
            (Some(first), None) => Some(format!("confirming the resolution asked by {first}")),
            (None, c) => c.map(str::to_string),
        };
        let comment = comment.as_deref();
        sqlx::query(
            "UPDATE alerts SET status = $2, next_escalation_at = NULL, updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(to.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        // Pending escalation notices are moot once someone has taken the alert.
        sqlx::query("UPDATE notifications SET status = 'cancelled' WHERE alert_id = $1 AND status = 'pending' AND kind = 'escalation'")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let signed = super::accounts::insert_signature_of(&mut tx, signature).await?;
        signed_event(&mut tx, now_ms, id, actor, transition.action(), comment, signed).await?;
        if transition == Transition::Resolve {
            // Resolved means "no longer present": the next evaluation looks again, and the
            // alert re-opens if its condition holds (a lasting finding is acknowledged).
            sqlx::query(
                "INSERT INTO pending_evaluation (subject, up_to_seq) \
                 SELECT subject, MAX(seq) FROM records WHERE subject = (SELECT subject FROM alerts WHERE id = $1) \
                 GROUP BY subject ON CONFLICT (subject) DO NOTHING",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.alert(id).await?.ok_or_else(|| TransitionError::NotFound(id).into())
    }

    /// Alerts whose escalation time has come and whose status still lets them escalate.
    pub async fn due_escalations(&self) -> anyhow::Result<Vec<AlertRow>> {
        let sql = format!(
            "{} WHERE next_escalation_at IS NOT NULL AND next_escalation_at <= $1 AND status IN ({}) ORDER BY id",
            select_alerts!(""),
            Transition::Escalate.from_statuses_sql()
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(self.now_ms()).fetch_all(&self.pool).await?;
        let mut due = Vec::new();
        for r in &rows {
            let a = alert_row(r)?;
            if Transition::Escalate.apply(a.status).is_some() {
                due.push(a);
            }
        }
        Ok(due)
    }

    /// Escalates one step: notifies the next role and schedules the step after (or none).
    /// Does nothing if the alert was acknowledged or escalated meanwhile.
    pub async fn escalate(
        &self,
        alert: &AlertRow,
        recipients: &[Recipient],
        next_at: Option<DateTime<Utc>>,
        message_domain: &str,
    ) -> anyhow::Result<bool> {
        if Transition::Escalate.apply(alert.status).is_none() {
            return Ok(false);
        }
        let now_ms = self.now_ms();
        let mut tx = self.begin_write().await?;
        // The guard on status and step makes a step happen once, whoever runs it.
        let done = sqlx::query(
            "UPDATE alerts SET escalation_step = escalation_step + 1, next_escalation_at = $3, updated_at = $4 \
             WHERE id = $1 AND status = $5 AND escalation_step = $2",
        )
        .bind(alert.id)
        .bind(alert.escalation_step)
        .bind(next_at.map(|t| t.timestamp_millis()))
        .bind(now_ms)
        .bind(alert.status.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let roles: Vec<&str> = recipients.iter().map(|r| r.role.as_str()).collect();
        let to = format!("to {}", roles.join(", "));
        event(&mut tx, now_ms, alert.id, "vigil", Transition::Escalate.action(), Some(&to)).await?;
        let notice = Enqueue { kind: NotificationKind::Escalation, recipients, at_ms: now_ms, group: None };
        enqueue(&mut tx, now_ms, alert.id, notice, message_domain).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Creates a silence; alerts already open that it matches are silenced at once.
    pub async fn create_silence(
        &self,
        rule_id: Option<&str>,
        subject: Option<&str>,
        site: Option<&str>,
        expires_at: DateTime<Utc>,
        by: &str,
        comment: &str,
    ) -> anyhow::Result<i64> {
        let now = self.now();
        let now_ms = now.timestamp_millis();
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO silences (rule_id, subject, site, comment, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(rule_id)
        .bind(subject)
        .bind(site)
        .bind(comment)
        .bind(by)
        .bind(now_ms)
        .bind(expires_at.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        let new = Silence {
            id,
            rule_id: rule_id.map(str::to_string),
            subject: subject.map(str::to_string),
            site: site.map(str::to_string),
            comment: comment.to_string(),
            created_by: by.to_string(),
            created_at: now,
            expires_at,
            ended: false,
        };
        // Only alerts the silence can apply to; `matches` and `apply` below stay the rule.
        let mut sql = format!(
            "SELECT id, rule_id, subject, site, status FROM alerts WHERE status IN ({})",
            Transition::Silence.from_statuses_sql()
        );
        if rule_id.is_some() {
            sql.push_str(" AND rule_id = $1");
        }
        if subject.is_some() {
            sql.push_str(if rule_id.is_some() { " AND subject = $2" } else { " AND subject = $1" });
        }
        sql.push_str(" ORDER BY id");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in [rule_id, subject].into_iter().flatten() {
            query = query.bind(value);
        }
        let rows = query.fetch_all(&mut *tx).await?;
        for row in rows {
            let (rule, subj, alert_site): (String, String, Option<String>) =
                (row.try_get("rule_id")?, row.try_get("subject")?, opt_text(&row, "site"));
            let target = silence::Target { rule_id: &rule, subject: &subj, site: alert_site.as_deref() };
            let Some(to) = Transition::Silence.apply(status_of(&row)?) else { continue };
            if !new.matches(target) {
                continue;
            }
            let alert_id: i64 = row.try_get("id")?;
            sqlx::query(
                "UPDATE alerts SET status = $4, silence_id = $2, next_escalation_at = NULL, updated_at = $3 \
                 WHERE id = $1",
            )
            .bind(alert_id)
            .bind(id)
            .bind(now_ms)
            .bind(to.as_str())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE notifications SET status = 'suppressed' WHERE alert_id = $1 AND status = 'pending'",
            )
            .bind(alert_id)
            .execute(&mut *tx)
            .await?;
            let why = format!("by silence #{id}: {comment}");
            event(&mut tx, now_ms, alert_id, by, Transition::Silence.action(), Some(&why)).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// A person ends a silence before its time: it expires now (the next clock pass re-opens
    /// the alerts it kept quiet and notifies them), with who ended it and their signature if
    /// signed. False if the silence had ended already.
    pub async fn close_silence(
        &self,
        id: i64,
        by: &str,
        signature: Option<&crate::accounts::NewSignature>,
    ) -> anyhow::Result<bool> {
        self.signed_once(
            "UPDATE silences SET expires_at = $2, ended_by = $3, signature_id = $4 \
             WHERE id = $1 AND ended_at IS NULL AND ended_by IS NULL",
            id,
            by,
            signature,
        )
        .await
    }

    /// Ends expired silences. Alerts they silenced that are still silenced re-open; the
    /// ones whose notice never went out are returned, to be notified now.
    pub async fn expire_silences(&self) -> anyhow::Result<Vec<AlertRow>> {
        let now = self.now();
        let now_ms = now.timestamp_millis();
        let mut tx = self.begin_write().await?;
        let expired: Vec<Silence> =
            unended_silences(&mut tx).await?.into_iter().filter(|s| s.expired(now)).collect();
        let mut reopened = Vec::new();
        for s in expired {
            // Ended once: a second runner that read it unended changes (and notifies) nothing.
            let ended = sqlx::query("UPDATE silences SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL")
                .bind(s.id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            if ended.rows_affected() == 0 {
                continue;
            }
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT id, status FROM alerts WHERE silence_id = $1 AND status IN ({}) ORDER BY id",
                Transition::Reopen.from_statuses_sql()
            )))
            .bind(s.id)
            .fetch_all(&mut *tx)
            .await?;
            for row in rows {
                let Some(to) = Transition::Reopen.apply(status_of(&row)?) else { continue };
                let id: i64 = row.try_get("id")?;
                let from: String = row.try_get("status")?;
                // Only from the status read: an alert acknowledged meanwhile stays so.
                let changed = sqlx::query(
                    "UPDATE alerts SET status = $3, updated_at = $2 WHERE id = $1 AND status = $4",
                )
                .bind(id)
                .bind(now_ms)
                .bind(to.as_str())
                .bind(from)
                .execute(&mut *tx)
                .await?;
                if changed.rows_affected() == 0 {
                    continue;
                }
                let why = format!("silence #{} expired", s.id);
                event(&mut tx, now_ms, id, "vigil", Transition::Reopen.action(), Some(&why)).await?;
                let sent: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM notifications WHERE alert_id = $1 AND status = 'sent'",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
                if lifecycle::notify_on_reopen(sent) {
                    reopened.push(id);
                }
            }
        }
        tx.commit().await?;
        let mut out = Vec::new();
        for id in reopened {
            if let Some(a) = self.alert(id).await? {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Queues the first notice of an alert that had none (after its silence expired) and
    /// schedules its escalation.
    pub async fn notify_reopened(
        &self,
        alert_id: i64,
        recipients: &[Recipient],
        escalate_at: Option<DateTime<Utc>>,
        message_domain: &str,
    ) -> anyhow::Result<()> {
        let now_ms = self.now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE alerts SET next_escalation_at = $2 WHERE id = $1")
            .bind(alert_id)
            .bind(escalate_at.map(|t| t.timestamp_millis()))
            .execute(&mut *tx)
            .await?;
        let notice = Enqueue { kind: NotificationKind::Alert, recipients, at_ms: now_ms, group: None };
        enqueue(&mut tx, now_ms, alert_id, notice, message_domain).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn silences(&self) -> anyhow::Result<Vec<Silence>> {
        let rows = sqlx::query(
            "SELECT id, rule_id, subject, site, comment, created_by, created_at, expires_at, ended_at \
             FROM silences ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(silence_row).collect()
    }

    pub async fn alert_events(&self, alert_id: i64) -> anyhow::Result<Vec<AlertEvent>> {
        let rows = sqlx::query(
            "SELECT at, actor, action, comment, signature_id FROM alert_events WHERE alert_id = $1 ORDER BY id",
        )
        .bind(alert_id)
        .fetch_all(&self.pool)
        .await?;
        let mut events = Vec::with_capacity(rows.len());
        for r in &rows {
            let signature = match r.try_get::<Option<i64>, _>("signature_id")? {
                Some(sid) => self.signature(sid).await?,
                None => None,
            };
            events.push(AlertEvent {
                at: to_time(r.try_get("at")?),
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                comment: opt_text(r, "comment"),
                signature,
            });
        }
        Ok(events)
    }

    /// The totals of one cohort rule (one row, kept up to date by each evaluation). The
    /// matching subjects are not listed here: see `cohort_matching_subjects`.
    pub async fn cohort_totals(&self, rule_id: &str) -> anyhow::Result<CohortTotals> {
        let row = sqlx::query("SELECT evaluable, matching, events FROM cohort_totals WHERE rule_id = $1")
            .bind(rule_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => CohortTotals {
                evaluable: r.try_get("evaluable")?,
                matching: r.try_get("matching")?,
                events: r.try_get("events")?,
                subjects: Vec::new(),
            },
            None => CohortTotals::default(),
        })
    }

    /// The subjects that currently match a cohort rule (read only when it fires).
    pub async fn cohort_matching_subjects(&self, rule_id: &str) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT subject FROM cohort_contributions WHERE rule_id = $1 AND matching = 1 ORDER BY subject",
        )
        .bind(rule_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("subject")?)).collect()
    }

    /// Every subject with at least one record.
    pub async fn subjects(&self) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT subject FROM records ORDER BY subject")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("subject")?)).collect()
    }

    /// The id of the newest alert of a rule, if any.
    pub async fn latest_alert_of(&self, rule_id: &str) -> anyhow::Result<Option<i64>> {
        Ok(sqlx::query("SELECT MAX(id) AS id FROM alerts WHERE rule_id = $1")
            .bind(rule_id)
            .fetch_one(&self.pool)
            .await?
            .try_get("id")?)
    }

    pub async fn alerts(&self) -> anyhow::Result<Vec<AlertRow>> {
        let rows = sqlx::query(select_alerts!("ORDER BY id")).fetch_all(&self.pool).await?;
        rows.iter().map(alert_row).collect()
    }

    pub async fn alert(&self, id: i64) -> anyhow::Result<Option<AlertRow>> {
        let row = sqlx::query(select_alerts!("WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(alert_row).transpose()
    }
}

/// Which alerts a listing shows (the console's inbox); every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub status: Option<String>,
    pub severity: Option<String>,
    pub rule_id: Option<String>,
    pub site: Option<String>,
    pub subject: Option<String>,
    /// Raised at or after / before (epoch ms).
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

impl AlertFilter {
    /// ` WHERE …` with `$1…` placeholders from `first`, and the values in order.
    fn sql(&self, first: usize) -> (String, Vec<String>, Vec<i64>) {
        let mut clauses = Vec::new();
        let mut texts = Vec::new();
        let mut n = first;
        for (column, value) in [
            ("status", &self.status),
            ("severity", &self.severity),
            ("rule_id", &self.rule_id),
            ("site", &self.site),
            ("subject", &self.subject),
        ] {
            if let Some(v) = value {
                clauses.push(format!("{column} = ${n}"));
                texts.push(v.clone());
                n += 1;
            }
        }
        let mut numbers = Vec::new();
        if let Some(from) = self.from_ms {
            clauses.push(format!("raised_at >= ${n}"));
            numbers.push(from);
            n += 1;
        }
        if let Some(to) = self.to_ms {
            clauses.push(format!("raised_at < ${n}"));
            numbers.push(to);
        }
        let sql =
            if clauses.is_empty() { String::new() } else { format!(" WHERE {}", clauses.join(" AND ")) };
        (sql, texts, numbers)
    }
}

impl Store {
    /// One page of alerts: open critical ones first (oldest first), then other open ones
    /// (oldest first), then the rest (newest first); and the total that match.
    pub async fn alert_page(
        &self,
        filter: &AlertFilter,
        offset: i64,
        limit: i64,
    ) -> anyhow::Result<(Vec<AlertRow>, i64)> {
        let (where_sql, texts, numbers) = filter.sql(1);
        let n = texts.len() + numbers.len();
        let sql = format!(
            "{}{where_sql} ORDER BY CASE WHEN status = 'open' AND severity = 'critical' THEN 0 \
             WHEN status = 'open' THEN 1 ELSE 2 END, \
             CASE WHEN status = 'open' THEN raised_at ELSE -raised_at END, id LIMIT ${} OFFSET ${}",
            select_alerts!(""),
            n + 1,
            n + 2
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for t in &texts {
            q = q.bind(t.clone());
        }
        for v in &numbers {
            q = q.bind(*v);
        }
        let rows = q.bind(limit).bind(offset).fetch_all(&self.pool).await?;
        let alerts = rows.iter().map(alert_row).collect::<anyhow::Result<Vec<_>>>()?;
        let count_sql = format!("SELECT COUNT(*) AS n FROM alerts{where_sql}");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(count_sql));
        for t in &texts {
            q = q.bind(t.clone());
        }
        for v in &numbers {
            q = q.bind(*v);
        }
        let total: i64 = q.fetch_one(&self.pool).await?.try_get("n")?;
        Ok((alerts, total))
    }

    /// Alerts per status among those `filter` lets through, status filter aside.
    pub async fn alert_counts(&self, filter: &AlertFilter) -> anyhow::Result<Vec<(String, i64)>> {
        let unfiltered = AlertFilter { status: None, ..filter.clone() };
        let (where_sql, texts, numbers) = unfiltered.sql(1);
        let sql = format!("SELECT status, COUNT(*) AS n FROM alerts{where_sql} GROUP BY status");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for t in &texts {
            q = q.bind(t.clone());
        }
        for v in &numbers {
            q = q.bind(*v);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("status")?, r.try_get("n")?))).collect()
    }

    /// Every alert of one subject, oldest first.
    pub async fn alerts_of(&self, subject: &str) -> anyhow::Result<Vec<AlertRow>> {
        let rows = sqlx::query(select_alerts!("WHERE subject = $1 ORDER BY id"))
            .bind(subject)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(alert_row).collect()
    }
}

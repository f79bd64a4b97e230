//! Alerts: findings become alerts with a dedup key (rule, subject, episode, level), the
//! recipients their rule and the routes name, a time for their first notice (at once,
//! after a grouping wait, or in the daily digest) and an escalation time. The store
//! raises each alert once and writes its outbox rows in the same transaction.
//!
//! The lifecycle: open → acknowledged → resolved, or silenced. An open alert nobody
//! acknowledges escalates along its chain; escalation state lives in the database, so it
//! survives restarts. An alert whose condition is gone resolves itself.

use crate::config::{AlertingConfig, Config, RoleConfig};
use crate::model::SubjectHistory;
use crate::rules::{Finding, Rule, RuleSet, ScheduledVisit, Severity, Totals};
use crate::store::{
    AlertRow, CohortContribution, Evaluation, FirstNotice, NewAlert, Recipient, StillFiring, Store,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::BTreeMap;

/// Who hears of which alert, and when.
#[derive(Debug, Clone, Default)]
pub struct Router {
    roles: BTreeMap<String, RoleConfig>,
    default_roles: Vec<String>,
    alerting: AlertingConfig,
}

impl Router {
    pub fn new(config: &Config) -> Self {
        Self {
            roles: config.recipients.clone(),
            default_roles: config.default_roles.clone(),
            alerting: config.alerting.clone(),
        }
    }

    fn expand(&self, roles: &[String]) -> Vec<Recipient> {
        let mut out: Vec<Recipient> = Vec::new();
        for role in roles {
            let Some(c) = self.roles.get(role) else { continue };
            for address in &c.addresses {
                if !out.iter().any(|r| &r.address == address) {
                    out.push(Recipient { role: role.clone(), address: address.clone(), blinded: c.blinded });
                }
            }
        }
        out
    }

    /// The roles an alert of this rule goes to: the rule's `notify` plus every matching
    /// route; the default roles if that leaves none.
    pub fn roles(&self, rule: &Rule, severity: Severity, site: Option<&str>) -> Vec<String> {
        let mut roles: Vec<String> = rule.notify.clone();
        for r in &self.alerting.routes {
            let matches = r.severity.as_deref().is_none_or(|s| s == severity.as_str())
                && r.site.as_deref().is_none_or(|s| Some(s) == site)
                && r.rule.as_deref().is_none_or(|id| id == rule.id)
                && r.labels.iter().all(|(k, v)| rule.labels.get(k) == Some(v));
            if matches {
                roles.extend(r.roles.iter().cloned());
            }
        }
        if roles.is_empty() {
            roles = self.default_roles.clone();
        }
        let mut seen = Vec::new();
        roles.retain(|r| {
            let new = !seen.contains(r);
            seen.push(r.clone());
            new
        });
        roles
    }

    pub fn recipients(&self, rule: &Rule, severity: Severity, site: Option<&str>) -> Vec<Recipient> {
        self.expand(&self.roles(rule, severity, site))
    }

    /// The escalation chain and its step time for an alert of this rule and severity.
    pub fn escalation(&self, rule: Option<&Rule>, severity: &str) -> Option<(chrono::Duration, Vec<String>)> {
        let e = self.alerting.escalation.get(severity)?;
        let after = rule.and_then(|r| r.escalate_after).unwrap_or(e.after);
        Some((after.chrono(), e.chain.clone()))
    }

    /// When a new alert's first notice may go, and under which grouping key.
    pub fn first_notice(&self, rule: &Rule, severity: Severity, now: DateTime<Utc>) -> FirstNotice {
        let escalate_at =
            self.escalation(Some(rule), severity.as_str()).map(|(after, _)| (now + after).timestamp_millis());
        if let Some(d) = &self.alerting.digest {
            if d.severities.iter().any(|s| s == severity.as_str()) {
                return FirstNotice {
                    notify_at_ms: next_time_of_day(now, d.at_utc).timestamp_millis(),
                    group: "digest".into(),
                    escalate_at_ms: escalate_at,
                };
            }
        }
        let wait = match severity {
            Severity::Critical => chrono::Duration::zero(),
            _ => self.alerting.group_wait.map_or(chrono::Duration::seconds(30), |w| w.chrono()),
        };
        FirstNotice {
            notify_at_ms: (now + wait).timestamp_millis(),
            group: format!("rule:{}", rule.id),
            escalate_at_ms: escalate_at,
        }
    }

    /// Rules that name a role the configuration does not define, as `file:line` messages.
    pub fn unknown_roles(&self, rules: &RuleSet) -> Vec<String> {
        rules
            .rules
            .iter()
            .flat_map(|r| {
                r.notify.iter().filter(|role| !self.roles.contains_key(*role)).map(move |role| {
                    format!(
                        "{}:{}:1: rule `{}` notifies role `{role}`, which is not defined under `recipients` in the config",
                        r.file.display(),
                        r.line,
                        r.id
                    )
                })
            })
            .collect()
    }
}

/// The next `HH:MM` UTC strictly after `now`.
fn next_time_of_day(now: DateTime<Utc>, t: chrono::NaiveTime) -> DateTime<Utc> {
    let today = now.date_naive().and_time(t).and_utc();
    if today > now {
        today
    } else {
        today + chrono::Duration::days(1)
    }
}

pub fn new_alert(
    rule: &Rule,
    history: Option<&SubjectHistory>,
    finding: Finding,
    router: &Router,
    now: DateTime<Utc>,
) -> NewAlert {
    let site = history.and_then(|h| h.site()).map(str::to_string);
    NewAlert {
        rule_id: rule.id.clone(),
        rule_version: rule.version.clone(),
        // Cohort findings belong to no subject.
        subject: history.map(|h| h.subject.to_string()).unwrap_or_default(),
        recipients: router.recipients(rule, finding.severity, site.as_deref()),
        delivery: router.first_notice(rule, finding.severity, now),
        site,
        episode: finding.episode,
        level: finding.level,
        severity: finding.severity.as_str().to_string(),
        title: finding.title.unwrap_or_else(|| rule.title.clone()),
        summary: finding.summary,
        evidence: json!({
            "why": finding.why,
            "rule": {"id": rule.id, "version": rule.version, "kind": rule.kind.name(),
                     "file": rule.file.display().to_string(), "line": rule.line},
            "details": finding.evidence,
        }),
    }
}

/// Evaluates rules against stored data and raises what is new.
pub struct Evaluator<'a> {
    pub store: &'a Store,
    pub rules: &'a RuleSet,
    pub router: &'a Router,
    pub schedule: &'a [ScheduledVisit],
    pub message_domain: &'a str,
}

impl Evaluator<'_> {
    /// Evaluates every subject whose history changed (all rules), then the cohort rules.
    /// Returns the ids of the alerts raised.
    pub async fn evaluate_pending(&self, as_of: DateTime<Utc>) -> anyhow::Result<Vec<i64>> {
        let mut raised = Vec::new();
        let pending = self.store.pending_subjects().await?;
        for (subject, up_to_seq) in &pending {
            raised.extend(self.evaluate_subject(subject, Some(*up_to_seq), as_of, |_| true).await?);
        }
        if !pending.is_empty() {
            raised.extend(self.judge_cohort(as_of).await?);
        }
        Ok(raised)
    }

    /// What time alone changes: clock-driven rules (SAE clocks, overdue visits) for every
    /// subject, cohort rules, escalations that fell due, silences that expired.
    pub async fn evaluate_clock(&self, as_of: DateTime<Utc>) -> anyhow::Result<Vec<i64>> {
        let mut raised = Vec::new();
        if self.rules.rules.iter().any(|r| r.kind.is_time_driven()) {
            for subject in self.store.subjects().await? {
                raised
                    .extend(self.evaluate_subject(&subject, None, as_of, |r| r.kind.is_time_driven()).await?);
            }
        }
        raised.extend(self.judge_cohort(as_of).await?);
        self.escalate_due().await?;
        self.expire_silences().await?;
        Ok(raised)
    }

    async fn evaluate_subject(
        &self,
        subject: &str,
        up_to_seq: Option<i64>,
        as_of: DateTime<Utc>,
        wanted: impl Fn(&Rule) -> bool,
    ) -> anyhow::Result<Vec<i64>> {
        let history = self.store.history(subject).await?;
        let now = Utc::now();
        let mut e = Evaluation { pending: up_to_seq.map(|s| (subject, s)), subject, ..Default::default() };
        for rule in self.rules.rules.iter().filter(|r| wanted(r) && !r.kind.is_cohort()) {
            let findings = rule.evaluate(&history, as_of, self.schedule);
            e.still_firing.push(StillFiring {
                rule_id: rule.id.clone(),
                episodes: findings.iter().map(|f| f.episode.clone()).collect(),
                resolved_notice: self.resolved_notice(rule, history.site()),
            });
            e.alerts
                .extend(findings.into_iter().map(|f| new_alert(rule, Some(&history), f, self.router, now)));
        }
        for rule in self.rules.rules.iter().filter(|r| wanted(r)) {
            if let Some(c) = rule.contribution(&history, as_of) {
                e.contributions.push(CohortContribution {
                    rule_id: rule.id.clone(),
                    evaluable: c.evaluable,
                    matching: c.matching,
                    events: i64::from(c.events),
                });
            }
        }
        let ids = self.store.commit_evaluation(e, self.message_domain).await?;
        for id in &ids {
            tracing::info!(alert_id = id, subject = %subject, "Alert raised.");
        }
        Ok(ids)
    }

    fn resolved_notice(&self, rule: &Rule, site: Option<&str>) -> Vec<Recipient> {
        if rule.send_resolved {
            self.router.recipients(rule, rule.severity, site)
        } else {
            Vec::new()
        }
    }

    /// Judges each cohort rule from the stored contributions (a sum per rule).
    async fn judge_cohort(&self, as_of: DateTime<Utc>) -> anyhow::Result<Vec<i64>> {
        let now = Utc::now();
        let mut e = Evaluation::default();
        for rule in self.rules.rules.iter().filter(|r| r.kind.is_cohort()) {
            let t = self.store.cohort_totals(&rule.id).await?;
            let mut totals = Totals {
                evaluable: t.evaluable.max(0) as u32,
                matching_subjects: t.matching.max(0) as u32,
                events: t.events.max(0) as u32,
                subjects: Vec::new(),
            };
            let mut findings = rule.judge(&totals, as_of);
            if !findings.is_empty() {
                // Only a firing rule needs the names for its evidence.
                totals.subjects = self.store.cohort_matching_subjects(&rule.id).await?;
                findings = rule.judge(&totals, as_of);
            }
            e.still_firing.push(StillFiring {
                rule_id: rule.id.clone(),
                episodes: findings.iter().map(|f| f.episode.clone()).collect(),
                resolved_notice: self.resolved_notice(rule, None),
            });
            e.alerts.extend(findings.into_iter().map(|f| new_alert(rule, None, f, self.router, now)));
        }
        if e.still_firing.is_empty() {
            return Ok(Vec::new());
        }
        let ids = self.store.commit_evaluation(e, self.message_domain).await?;
        for id in &ids {
            tracing::info!(alert_id = id, "Cohort alert raised.");
        }
        Ok(ids)
    }

    /// Escalates every open alert whose time has come to the next role of its chain.
    pub async fn escalate_due(&self) -> anyhow::Result<usize> {
        let mut n = 0;
        for alert in self.store.due_escalations().await? {
            let rule = self.rules.get(&alert.rule_id);
            let Some((after, chain)) = self.router.escalation(rule, &alert.severity) else { continue };
            let step = alert.escalation_step.max(0) as usize;
            let Some(role) = chain.get(step) else { continue };
            let recipients = self.router.expand(std::slice::from_ref(role));
            let next = (step + 1 < chain.len()).then(|| (Utc::now() + after).timestamp_millis());
            if self.store.escalate(&alert, &recipients, next, self.message_domain).await? {
                tracing::warn!(alert_id = alert.id, role = %role, step = step + 1, "Alert escalated.");
                n += 1;
            }
        }
        Ok(n)
    }

    /// Ends expired silences; alerts they kept quiet re-open and are notified now.
    pub async fn expire_silences(&self) -> anyhow::Result<usize> {
        let reopened: Vec<AlertRow> = self.store.expire_silences().await?;
        for a in &reopened {
            let severity = match a.severity.as_str() {
                "critical" => Severity::Critical,
                "warning" => Severity::Warning,
                _ => Severity::Info,
            };
            let (recipients, escalate_at) = match self.rules.get(&a.rule_id) {
                Some(rule) => (
                    self.router.recipients(rule, severity, a.site.as_deref()),
                    self.router
                        .escalation(Some(rule), &a.severity)
                        .map(|(d, _)| (Utc::now() + d).timestamp_millis()),
                ),
                None => (self.router.expand(&self.router.default_roles), None),
            };
            self.store.notify_reopened(a.id, &recipients, escalate_at, self.message_domain).await?;
            tracing::info!(alert_id = a.id, "Silence expired; alert re-opened and notified.");
        }
        Ok(reopened.len())
    }
}

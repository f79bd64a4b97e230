//! Alerts: findings become alerts with a dedup key (rule, subject, episode, level) and the
//! recipients their rule routes to. The store raises each alert once and writes its
//! outbox rows in the same transaction.

use crate::config::{Config, RoleConfig};
use crate::model::SubjectHistory;
use crate::rules::{Finding, Rule, RuleSet, ScheduledVisit, Totals};
use crate::store::{CohortContribution, NewAlert, Store};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::BTreeMap;

/// Who hears of which rule.
#[derive(Debug, Clone, Default)]
pub struct Router {
    roles: BTreeMap<String, RoleConfig>,
    default_roles: Vec<String>,
}

impl Router {
    pub fn new(config: &Config) -> Self {
        Self { roles: config.recipients.clone(), default_roles: config.default_roles.clone() }
    }

    /// (role, address, blinded) for every address the rule notifies.
    pub fn recipients(&self, rule: &Rule) -> Vec<(String, String, bool)> {
        let roles = if rule.notify.is_empty() { &self.default_roles } else { &rule.notify };
        roles
            .iter()
            .filter_map(|r| self.roles.get(r).map(|c| (r, c)))
            .flat_map(|(role, c)| c.addresses.iter().map(move |a| (role.clone(), a.clone(), c.blinded)))
            .collect()
    }

    /// Rules that name a role the configuration does not define, as `file:line` messages.
    pub fn unknown_roles(&self, rules: &RuleSet) -> Vec<String> {
        rules
            .rules
            .iter()
            .flat_map(|r| {
                r.notify
                    .iter()
                    .filter(|role| !self.roles.contains_key(*role))
                    .map(move |role| {
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

pub fn new_alert(
    rule: &Rule,
    history: Option<&SubjectHistory>,
    finding: Finding,
    router: &Router,
) -> NewAlert {
    NewAlert {
        rule_id: rule.id.clone(),
        rule_version: rule.version.clone(),
        // Cohort findings belong to no subject.
        subject: history.map(|h| h.subject.to_string()).unwrap_or_default(),
        site: history.and_then(|h| h.site()).map(str::to_string),
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
        recipients: router.recipients(rule),
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

    /// Evaluates the rules that change with the clock (SAE clocks, overdue visits) for
    /// every subject, and judges the cohort rules. Run on a timer by the daemon.
    pub async fn evaluate_clock(&self, as_of: DateTime<Utc>) -> anyhow::Result<Vec<i64>> {
        let mut raised = Vec::new();
        if self.rules.rules.iter().any(|r| r.kind.is_time_driven()) {
            for subject in self.store.subjects().await? {
                raised
                    .extend(self.evaluate_subject(&subject, None, as_of, |r| r.kind.is_time_driven()).await?);
            }
        }
        raised.extend(self.judge_cohort(as_of).await?);
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
        let mut alerts = Vec::new();
        let mut contributions = Vec::new();
        for rule in self.rules.rules.iter().filter(|r| wanted(r)) {
            for f in rule.evaluate(&history, as_of, self.schedule) {
                alerts.push(new_alert(rule, Some(&history), f, self.router));
            }
            if let Some(c) = rule.contribution(&history, as_of) {
                contributions.push(CohortContribution {
                    rule_id: rule.id.clone(),
                    evaluable: c.evaluable,
                    matching: c.matching,
                    events: i64::from(c.events),
                });
            }
        }
        let ids = self
            .store
            .commit_evaluation(up_to_seq.map(|s| (subject, s)), &alerts, &contributions, self.message_domain)
            .await?;
        for id in &ids {
            tracing::info!(alert_id = id, subject = %subject, "Alert raised.");
        }
        Ok(ids)
    }

    /// Judges each cohort rule from the stored contributions (a sum per rule).
    async fn judge_cohort(&self, as_of: DateTime<Utc>) -> anyhow::Result<Vec<i64>> {
        let mut alerts = Vec::new();
        for rule in self.rules.rules.iter().filter(|r| r.kind.is_cohort()) {
            let t = self.store.cohort_totals(&rule.id).await?;
            let totals = Totals {
                evaluable: t.evaluable.max(0) as u32,
                matching_subjects: t.matching.max(0) as u32,
                events: t.events.max(0) as u32,
                subjects: t.subjects,
            };
            for f in rule.judge(&totals, as_of) {
                alerts.push(new_alert(rule, None, f, self.router));
            }
        }
        if alerts.is_empty() {
            return Ok(Vec::new());
        }
        let ids = self.store.commit_evaluation(None, &alerts, &[], self.message_domain).await?;
        for id in &ids {
            tracing::info!(alert_id = id, "Cohort alert raised.");
        }
        Ok(ids)
    }
}

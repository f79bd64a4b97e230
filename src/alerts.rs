//! Alerts: findings become alerts with a dedup key (rule, subject, episode, level) and the
//! recipients their rule routes to. The store raises each alert once and writes its
//! outbox rows in the same transaction.

use crate::config::{Config, RoleConfig};
use crate::model::SubjectHistory;
use crate::rules::{Finding, Rule, RuleSet};
use crate::store::{NewAlert, Store};
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

pub fn new_alert(rule: &Rule, history: &SubjectHistory, finding: Finding, router: &Router) -> NewAlert {
    NewAlert {
        rule_id: rule.id.clone(),
        rule_version: rule.version.clone(),
        subject: history.subject.to_string(),
        site: history.site().map(str::to_string),
        episode: finding.episode,
        level: finding.level,
        severity: finding.severity.as_str().to_string(),
        title: finding.title.unwrap_or_else(|| rule.title.clone()),
        summary: finding.summary,
        evidence: json!({
            "why": finding.why,
            "rule": {"id": rule.id, "version": rule.version, "kind": rule.kind.name()},
            "details": finding.evidence,
        }),
        recipients: router.recipients(rule),
    }
}

/// Evaluates every subject whose history changed, and raises what is new.
/// Returns the ids of the alerts raised.
pub async fn evaluate_pending(
    store: &Store,
    rules: &RuleSet,
    router: &Router,
    message_domain: &str,
    as_of: DateTime<Utc>,
) -> anyhow::Result<Vec<i64>> {
    let mut raised = Vec::new();
    for (subject, up_to_seq) in store.pending_subjects().await? {
        let history = store.history(&subject).await?;
        let alerts: Vec<NewAlert> = rules
            .rules
            .iter()
            .flat_map(|rule| {
                rule.evaluate(&history, as_of)
                    .into_iter()
                    .map(|f| new_alert(rule, &history, f, router))
                    .collect::<Vec<_>>()
            })
            .collect();
        let ids = store.commit_evaluation(Some((&subject, up_to_seq)), &alerts, message_domain).await?;
        for id in &ids {
            tracing::info!(alert_id = id, subject = %subject, "Alert raised.");
        }
        raised.extend(ids);
    }
    Ok(raised)
}

//! Routing: who hears of an alert of a rule (the rule's roles plus every matching
//! route, else the default roles), when its first notice may go (at once, after a
//! grouping wait, or in the daily digest), and its escalation chain.

use super::{FirstNotice, Recipient};
use crate::config::{AlertingConfig, Config, RoleConfig};
use crate::rules::{Rule, RuleSet, Severity};
use chrono::{DateTime, Utc};
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

    /// The addresses of these roles, each once, in role order.
    pub fn expand(&self, roles: &[String]) -> Vec<Recipient> {
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
    pub fn escalation(
        &self,
        rule: Option<&Rule>,
        severity: Severity,
    ) -> Option<(chrono::Duration, Vec<String>)> {
        let e = self.alerting.escalation.get(severity.as_str())?;
        let after = rule.and_then(|r| r.escalate_after).unwrap_or(e.after);
        Some((after.chrono(), e.chain.clone()))
    }

    /// The roles every alert goes to when its rule and the routes name none.
    /// Who hears that an email could not be delivered: `alerting.undeliverable.notify`
    /// (else the default roles) and the fallback address.
    pub fn undeliverable_recipients(&self) -> Vec<Recipient> {
        let u = &self.alerting.undeliverable;
        let roles = if u.notify.is_empty() { &self.default_roles } else { &u.notify };
        let mut out = self.expand(roles);
        if let Some(address) = u.fallback.as_ref().filter(|a| !out.iter().any(|r| &r.address == *a)) {
            out.push(Recipient { role: "fallback".into(), address: address.clone(), blinded: true });
        }
        out
    }

    /// What to do when an email cannot be delivered.
    pub fn undeliverable(&self) -> &crate::config::Undeliverable {
        &self.alerting.undeliverable
    }

    pub fn default_recipients(&self) -> Vec<Recipient> {
        self.expand(&self.default_roles)
    }

    /// When a new alert's first notice may go, and under which grouping key.
    pub fn first_notice(&self, rule: &Rule, severity: Severity, now: DateTime<Utc>) -> FirstNotice {
        let escalate_at = self.escalation(Some(rule), severity).map(|(after, _)| now + after);
        if let Some(d) = &self.alerting.digest {
            if d.severities.iter().any(|s| s == severity.as_str()) {
                return FirstNotice {
                    notify_at: next_time_of_day(now, d.at_utc),
                    group: "digest".into(),
                    escalate_at,
                };
            }
        }
        let wait = match severity {
            Severity::Critical => chrono::Duration::zero(),
            _ => self.alerting.group_wait.map_or(chrono::Duration::seconds(30), |w| w.chrono()),
        };
        FirstNotice { notify_at: now + wait, group: format!("rule:{}", rule.id), escalate_at }
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

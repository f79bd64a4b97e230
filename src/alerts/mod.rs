//! Alerts: what findings become. A finding becomes an alert with a dedup key (rule,
//! subject, episode, level), the recipients its rule and the routes name, a time for its
//! first notice and an escalation time (`route`). Which findings are news and which
//! alerts resolve themselves is `policy`; the statuses and the transitions between them
//! are `lifecycle`; silences are `silence`. The store records what these decide, each
//! alert with its outbox rows in one transaction.

pub mod lifecycle;
pub mod policy;
pub mod route;
pub mod silence;

pub use lifecycle::{AlertStatus, Transition, TransitionError, UnknownValue};
pub use route::Router;
pub use silence::Silence;

use crate::model::SubjectHistory;
use crate::rules::{Finding, Rule, Severity};
use chrono::{DateTime, Utc};
use serde_json::json;

/// Someone (a role's address) who hears of an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub role: String,
    pub address: String,
    pub blinded: bool,
}

/// How an alert's first notice goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstNotice {
    /// When the notice may go (now, after a grouping wait, or at the next digest).
    pub notify_at: DateTime<Utc>,
    /// Notices pending together under the same key (per recipient) go out as one email.
    pub group: String,
    /// When the alert escalates if nobody acknowledges it; None = no escalation.
    pub escalate_at: Option<DateTime<Utc>>,
}

/// An alert to raise, and who must hear of it.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub rule_id: String,
    pub rule_version: String,
    /// Empty for cohort-level alerts.
    pub subject: String,
    pub site: Option<String>,
    /// What makes two findings the same event (an AE id, a scan date, a worsening onset).
    pub episode: String,
    /// Higher = worse (CTCAE grade, lesion count, confirmed > unconfirmed); a finding at a
    /// higher level than any earlier alert of the episode raises a new alert.
    pub level: i64,
    pub severity: Severity,
    pub title: String,
    pub summary: String,
    pub evidence: serde_json::Value,
    /// When the finding happened clinically (`Finding::clinical_time`); a report's data
    /// cut-off goes by it. None: the raising time stands for it.
    pub clinical_time: Option<DateTime<Utc>>,
    pub recipients: Vec<Recipient>,
    pub delivery: FirstNotice,
}

impl NewAlert {
    /// What a silence is matched against.
    pub fn target(&self) -> silence::Target<'_> {
        silence::Target { rule_id: &self.rule_id, subject: &self.subject, site: self.site.as_deref() }
    }
}

/// For one rule just evaluated for a subject: the episodes it still finds. Open alerts of
/// the rule whose episode is gone are resolved ("condition no longer present").
#[derive(Debug, Clone)]
pub struct StillFiring {
    pub rule_id: String,
    pub episodes: Vec<String>,
    /// Recipients of a resolved notice; empty = no notice.
    pub resolved_notice: Vec<Recipient>,
}

/// The alert a finding of `rule` asks for (`history` is None for cohort findings).
pub fn new_alert(
    rule: &Rule,
    history: Option<&SubjectHistory>,
    finding: Finding,
    router: &Router,
    now: DateTime<Utc>,
) -> NewAlert {
    let site = history.and_then(|h| h.site()).map(str::to_string);
    // A finding without a time of its own happened no later than the newest record it read.
    let latest_record =
        || history.and_then(|h| h.records.iter().filter_map(|r| r.when()).map(|t| t.earliest()).max());
    NewAlert {
        clinical_time: finding.clinical_time.or_else(latest_record),
        rule_id: rule.id.clone(),
        rule_version: rule.version.clone(),
        // Cohort findings belong to no subject.
        subject: history.map(|h| h.subject.to_string()).unwrap_or_default(),
        recipients: router.recipients(rule, finding.severity, site.as_deref()),
        delivery: router.first_notice(rule, finding.severity, now),
        site,
        episode: finding.episode,
        level: finding.level,
        severity: finding.severity,
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

/// Who hears that an alert of `rule` resolved itself: its recipients if the rule asks for
/// resolved notices, else nobody.
pub fn resolved_notice(router: &Router, rule: &Rule, site: Option<&str>) -> Vec<Recipient> {
    if rule.send_resolved {
        router.recipients(rule, rule.severity, site)
    } else {
        Vec::new()
    }
}

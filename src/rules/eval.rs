//! Evaluation: rules applied to histories, as a pure function. The daemon's evaluate
//! stage, `vigil test`, `vigil replay` and the DSMB report all come through here, so a
//! rule means the same thing wherever its findings are shown.

use super::{Contribution, Finding, Rule, RuleSet, ScheduledVisit, Totals};
use crate::model::{Record, SubjectHistory, SubjectId};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// What one subject-level rule found in one subject's history.
#[derive(Debug)]
pub struct RuleFindings<'r> {
    pub rule: &'r Rule,
    pub findings: Vec<Finding>,
}

/// Everything the rules say about one subject: findings per subject-level rule (also
/// when empty: an empty list resolves what the rule found before), and the subject's
/// part in each cohort rule.
#[derive(Debug, Default)]
pub struct SubjectOutcome<'r> {
    pub findings: Vec<RuleFindings<'r>>,
    pub contributions: Vec<(&'r Rule, Contribution)>,
}

/// Evaluates the `wanted` rules against one subject's history at `as_of`.
pub fn subject<'r>(
    rules: &'r RuleSet,
    history: &SubjectHistory,
    as_of: DateTime<Utc>,
    schedule: &[ScheduledVisit],
    wanted: impl Fn(&Rule) -> bool,
) -> SubjectOutcome<'r> {
    let mut out = SubjectOutcome::default();
    for rule in rules.rules.iter().filter(|r| wanted(r)) {
        if !rule.kind.is_cohort() {
            out.findings.push(RuleFindings { rule, findings: rule.evaluate(history, as_of, schedule) });
        }
        if let Some(c) = rule.contribution(history, as_of) {
            out.contributions.push((rule, c));
        }
    }
    out
}

/// A cohort rule's totals over these histories (the daemon keeps running totals in the
/// store instead; this is for a cut of the data, as in tests and reports).
pub fn totals(rule: &Rule, histories: &[SubjectHistory], as_of: DateTime<Utc>) -> Totals {
    Totals::from_contributions(
        histories.iter().filter_map(|h| rule.contribution(h, as_of).map(|c| (h.subject.as_str(), c))),
    )
}

/// The cohort-level findings of one cohort rule, from the cohort's totals.
pub fn cohort(rule: &Rule, totals: &Totals, as_of: DateTime<Utc>) -> Vec<Finding> {
    rule.judge(totals, as_of)
}

/// One finding with the rule and subject it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub rule: String,
    pub subject: Option<String>,
    pub finding: Finding,
}

impl std::fmt::Display for Fired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{{rule: {}, subject: {}, severity: {}, level: {}, episode: {}}} — {}",
            self.rule,
            self.subject.as_deref().unwrap_or("(cohort)"),
            self.finding.severity,
            self.finding.level,
            self.finding.episode,
            self.finding.summary
        )
    }
}

/// Every finding of every rule over these histories at `as_of`, cohort rules included
/// (their totals summed from the same histories).
pub fn all(
    rules: &RuleSet,
    histories: &[SubjectHistory],
    as_of: DateTime<Utc>,
    schedule: &[ScheduledVisit],
) -> Vec<Fired> {
    let mut out = Vec::new();
    let mut contributions: BTreeMap<&str, Vec<(&str, Contribution)>> = BTreeMap::new();
    for h in histories {
        let o = subject(rules, h, as_of, schedule, |_| true);
        for RuleFindings { rule, findings } in o.findings {
            out.extend(findings.into_iter().map(|f| fired(rule, Some(h.subject.as_str()), f)));
        }
        for (rule, c) in o.contributions {
            contributions.entry(rule.id.as_str()).or_default().push((h.subject.as_str(), c));
        }
    }
    for rule in rules.rules.iter().filter(|r| r.kind.is_cohort()) {
        let totals = Totals::from_contributions(contributions.remove(rule.id.as_str()).unwrap_or_default());
        out.extend(cohort(rule, &totals, as_of).into_iter().map(|f| fired(rule, None, f)));
    }
    out
}

fn fired(rule: &Rule, subject: Option<&str>, finding: Finding) -> Fired {
    Fired { rule: rule.id.clone(), subject: subject.map(str::to_string), finding }
}

/// Histories built from the records visible at `at` (a record without any time is
/// always visible), in arrival order.
pub fn histories_at(records: &[Record], at: DateTime<Utc>) -> Vec<SubjectHistory> {
    let mut by_subject: BTreeMap<SubjectId, Vec<Record>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.when().is_none_or(|t| t.earliest() <= at)) {
        by_subject.entry(r.subject.clone()).or_default().push(r.clone());
    }
    by_subject.into_iter().map(|(s, r)| SubjectHistory::new(s, r)).collect()
}

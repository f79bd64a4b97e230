//! Safety rules: loading and checking YAML rule files, and evaluating rules against a
//! subject's whole history.
//!
//! A rule kind is one file here: its parameters (serde, unknown keys refused), a
//! `check` for what serde cannot see, and `evaluate`, which turns a history into findings.

mod adverse_event;
mod disability;
mod duration;
mod load;
mod mri;
pub mod progression;
mod yamlpos;

pub use adverse_event::AdverseEventRule;
pub use disability::DisabilityRule;
pub use duration::Span;
pub use load::{load_rules, RuleError};
pub use mri::MriRule;

use crate::model::SubjectHistory;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    /// Recipient roles; empty = the configuration's default roles.
    pub notify: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// The rule's version: explicit `version:` or a hash of its definition.
    pub version: String,
    pub file: PathBuf,
    pub line: usize,
    pub kind: RuleKind,
}

#[derive(Debug, Clone)]
pub enum RuleKind {
    AdverseEvent(AdverseEventRule),
    DisabilityProgression(DisabilityRule),
    MriActivity(MriRule),
}

impl RuleKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::AdverseEvent(_) => "adverse_event",
            Self::DisabilityProgression(_) => "disability_progression",
            Self::MriActivity(_) => "mri_activity",
        }
    }
}

/// Something a rule found in a subject's history. The same finding, found again on the
/// same data, has the same episode and level, which is what makes alerts idempotent.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub episode: String,
    pub level: i64,
    pub severity: Severity,
    /// Title override (e.g. "unconfirmed" worsening); default is the rule title.
    pub title: Option<String>,
    /// What happened, in the trial's words (no names, no arm, no calendar dates).
    pub summary: String,
    /// Why the rule fired: the values, the baseline and the threshold.
    pub why: String,
    pub evidence: serde_json::Value,
}

impl Rule {
    pub fn evaluate(&self, history: &SubjectHistory, as_of: DateTime<Utc>) -> Vec<Finding> {
        let _span = tracing::debug_span!("rule", rule_id = %self.id, kind = self.kind.name()).entered();
        match &self.kind {
            RuleKind::AdverseEvent(r) => r.evaluate(history, self.severity),
            RuleKind::DisabilityProgression(r) => r.evaluate(history, self.severity, as_of),
            RuleKind::MriActivity(r) => r.evaluate(history, self.severity),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The EDSS thresholds of the first disability rule (for reports), else variant A.
    pub fn edss_change(&self) -> crate::model::MinimumChange {
        self.rules
            .iter()
            .find_map(|r| match &r.kind {
                RuleKind::DisabilityProgression(d) => Some(d.params.min_change.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }
}

/// "study day N" of a time relative to the subject's first dose, when both are known.
pub(crate) fn study_day(history: &SubjectHistory, t: &crate::model::ClinicalTime) -> Option<i64> {
    history.first_dose().map(|d| t.study_day(&d.start))
}

pub(crate) fn study_day_text(history: &SubjectHistory, t: &crate::model::ClinicalTime) -> String {
    match study_day(history, t) {
        Some(d) => format!("study day {d}"),
        None => "before any recorded dose".to_string(),
    }
}

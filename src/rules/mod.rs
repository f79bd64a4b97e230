//! Safety rules: loading and checking YAML rule files, and evaluating rules against a
//! subject's whole history.
//!
//! A rule kind is one file here implementing `Kind` (its parameters, a `check` that turns
//! them once into the runtime rule, and `evaluate`), plus one line in `rule_kinds!` below.

#[macro_use]
mod kind;

mod duration;
pub mod eval;
pub mod expr;
mod load;
pub mod progression;
pub mod testing;
mod window;
pub(crate) mod yamlpos;

pub use duration::Span;
pub use kind::Kind;
pub use load::{load_rules, parse_rules, read_bounded, RuleError, MAX_RULE_FILE_BYTES};
pub use mri::combined_active;
pub use overdue::ScheduledVisit;

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
    /// Escalate when unacknowledged this long (overrides the severity's escalation time).
    pub escalate_after: Option<Span>,
    /// Send a "resolved" notice when the condition is no longer present.
    pub send_resolved: bool,
    pub file: PathBuf,
    pub line: usize,
    pub kind: RuleKind,
}

// Every rule kind, one line each: `Variant(module::Type)`. `module` is the kind's file
// (declared here), `Type` implements `Kind` there.
rule_kinds! {
    AdverseEvent(adverse_event::AdverseEventRule),
    DisabilityProgression(disability::DisabilityRule),
    MriActivity(mri::MriRule),
    Lab(lab::LabRule),
    Vital(vital::VitalRule),
    SaeClock(sae_clock::SaeClockRule),
    OverdueVisit(overdue::OverdueVisitRule),
    Expression(expression::ExpressionRule),
    Cohort(cohort::CohortRule),
    BayesianStopping(stopping::BayesianStoppingRule),
}

/// What every evaluation may need besides the history.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub severity: Severity,
    /// "Now" for clocks and windows (the evaluation time, or a test's eval time).
    pub as_of: DateTime<Utc>,
    /// The protocol's visit schedule (from the configuration).
    pub schedule: &'a [ScheduledVisit],
}

/// One subject's part in a cohort rule, stored so the cohort total is a sum, not a
/// re-evaluation of every subject (cost per record grows with one history only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Contribution {
    /// Counts towards the denominator (e.g. dosed, or past the DLT window).
    pub evaluable: bool,
    /// Has at least one matching event.
    pub matching: bool,
    /// Number of matching events.
    pub events: u32,
}

/// The cohort's totals for one cohort rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub evaluable: u32,
    pub matching_subjects: u32,
    pub events: u32,
    /// The matching subjects' ids (sorted), for the evidence.
    pub subjects: Vec<String>,
}

impl Totals {
    pub fn from_contributions<'a>(items: impl IntoIterator<Item = (&'a str, Contribution)>) -> Self {
        let mut t = Totals::default();
        for (subject, c) in items {
            t.evaluable += u32::from(c.evaluable);
            t.events += c.events;
            if c.matching {
                t.matching_subjects += 1;
                t.subjects.push(subject.to_string());
            }
        }
        t.subjects.sort();
        t
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
    /// When it happened clinically: the onset, sample, reading, scan or visit that made it
    /// fire (for clocks, the start of the clock of the event concerned). None when no such
    /// time exists (cohort rules, evaluation errors): the alert then takes the subject's
    /// latest record time, else its raising time. A report's data cut-off goes by it.
    pub clinical_time: Option<DateTime<Utc>>,
}

/// The first instant of a day (UTC), for clinical times known only as a date.
pub(crate) fn day_start(d: chrono::NaiveDate) -> DateTime<Utc> {
    d.and_time(chrono::NaiveTime::MIN).and_utc()
}

impl Rule {
    /// Findings of a subject-level rule (none for cohort rules).
    pub fn evaluate(
        &self,
        history: &SubjectHistory,
        as_of: DateTime<Utc>,
        schedule: &[ScheduledVisit],
    ) -> Vec<Finding> {
        let _span = tracing::debug_span!("rule", rule_id = %self.id, kind = self.kind.name()).entered();
        let ctx = Context { severity: self.severity, as_of, schedule };
        self.kind.evaluate(history, &ctx)
    }

    /// A subject's contribution to a cohort rule (None for subject-level rules).
    pub fn contribution(&self, history: &SubjectHistory, as_of: DateTime<Utc>) -> Option<Contribution> {
        self.kind.contribution(history, as_of)
    }

    /// The cohort-level findings of a cohort rule, from its totals.
    pub fn judge(&self, totals: &Totals, as_of: DateTime<Utc>) -> Vec<Finding> {
        let ctx = Context { severity: self.severity, as_of, schedule: &[] };
        self.kind.judge(totals, &ctx)
    }
}

/// A confirmed-disability-worsening definition and the rule it comes from (None: the
/// defaults), for the report and NEDA-3, which must use the whole definition they cite.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EdssRule {
    pub id: Option<String>,
    pub params: progression::ProgressionParams,
}

#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The trial's disability rule (the first `disability_progression` rule), whole: the
    /// report cites it. Without one, the defaults of `ProgressionParams`.
    pub fn edss_rule(&self) -> EdssRule {
        self.rules
            .iter()
            .find_map(|r| match &r.kind {
                RuleKind::DisabilityProgression(d) => {
                    Some(EdssRule { id: Some(r.id.clone()), params: d.params.clone() })
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_unique_and_match_the_variants() {
        let mut names = KIND_NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KIND_NAMES.len(), "{KIND_NAMES:?}");
        assert!(KIND_NAMES.contains(&"bayesian_stopping") && KIND_NAMES[0] == "adverse_event");
    }

    #[test]
    fn a_clock_alert_carries_the_clinical_time_of_the_event_it_concerns() {
        let yaml = "rules:\n  - id: sae\n    kind: sae_clock\n    severity: critical\n  \
                    - id: ae\n    kind: adverse_event\n    match: {serious: true}\n    severity: warning\n";
        let rules = parse_rules(std::path::Path::new("r.yaml"), yaml).unwrap();
        let record = r#"{"subject":"A","date":"2019-02-26","adverse_events":[{"id":"AE-1","term":"Pneumonia",
            "onset":"2019-02-25","awareness":"2019-02-26T10:30:00+01:00","serious":true,"seriousness":["hospitalization"]}]}"#;
        let h = SubjectHistory::new(
            crate::model::SubjectId::parse("A").unwrap(),
            vec![crate::model::Record::from_json(record).unwrap()],
        );
        // Evaluated years later (back-filled): the clock is long overdue, and its finding is
        // dated at the awareness that started the clock, not at the evaluation.
        let later = DateTime::parse_from_rfc3339("2026-11-29T00:00:00Z").unwrap().to_utc();
        let clock = rules[0].evaluate(&h, later, &[]);
        let awareness = DateTime::parse_from_rfc3339("2019-02-26T09:30:00Z").unwrap().to_utc();
        assert!(!clock.is_empty());
        assert!(clock.iter().all(|f| f.clinical_time == Some(awareness)), "{clock:?}");
        let event = rules[1].evaluate(&h, later, &[]);
        let onset = DateTime::parse_from_rfc3339("2019-02-25T00:00:00Z").unwrap().to_utc();
        assert_eq!(event[0].clinical_time, Some(onset), "the onset");
    }
}

//! `overdue_visit` rules (in progress).

use super::{Context, Finding};
use crate::model::SubjectHistory;
use serde::Deserialize;

/// One visit of the protocol schedule (config `study.schedule`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledVisit {
    /// The visit label records carry (e.g. W12).
    pub visit: String,
    /// Target study day (day 1 = first dose).
    pub day: i64,
    /// Accepted days before and after the target.
    #[serde(default)]
    pub window_days: i64,
    /// Assessments expected at this visit (e.g. EDSS, MRI).
    #[serde(default)]
    pub assessments: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverdueVisitRule {}

impl OverdueVisitRule {
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        // Refused until implemented: a rule that loads must do what it says.
        Err(("kind".into(), "this rule kind is not available yet".into()))
    }

    pub(super) fn evaluate(&self, _h: &SubjectHistory, _ctx: &Context) -> Vec<Finding> {
        Vec::new()
    }
}

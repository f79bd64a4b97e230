//! Cohort rule (in progress).

use super::{Context, Contribution, Finding, Totals};
use crate::model::SubjectHistory;
use chrono::{DateTime, Utc};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortRule {}

impl CohortRule {
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        // Refused until implemented: a rule that loads must do what it says.
        Err(("kind".into(), "this rule kind is not available yet".into()))
    }

    pub(super) fn contribution(&self, _h: &SubjectHistory, _as_of: DateTime<Utc>) -> Contribution {
        Contribution::default()
    }

    pub(super) fn judge(&self, _totals: &Totals, _ctx: &Context) -> Vec<Finding> {
        Vec::new()
    }
}

//! `expression` rules (in progress).

use super::{Context, Finding};
use crate::model::SubjectHistory;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpressionRule {}

impl ExpressionRule {
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        // Refused until implemented: a rule that loads must do what it says.
        Err(("kind".into(), "this rule kind is not available yet".into()))
    }

    pub(super) fn evaluate(&self, _h: &SubjectHistory, _ctx: &Context) -> Vec<Finding> {
        Vec::new()
    }
}

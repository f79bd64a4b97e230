//! Section "Stopping rules": each of the trial's stopping rules, its boundary and where it
//! stands at the cut-off. The caller evaluates the rules; the report restates them.

use crate::report::document::{Cell, Row, Section, Table};
use crate::report::DsmbSummary;
use serde::Serialize;

/// Where one stopping rule stands; the caller evaluates the rule, the report restates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoppingRuleStatus {
    pub rule_id: String,
    pub title: String,
    /// The boundary in words, e.g. "stop if Pr(p > 0.20 | data) ≥ 0.80".
    pub threshold: String,
    /// The current value in words, e.g. "2 of 6 subjects; Pr = 0.41".
    pub current: String,
    pub fired: bool,
}

// --- the section in the report ---------------------------------------------------------

/// Section "Stopping rules".
pub(crate) fn section(s: &DsmbSummary) -> Section {
    let mut t = Table {
        id: "stopping_rules".to_string(),
        title: "Stopping rules and their status at the cut-off".to_string(),
        stub: Vec::new(),
        groups: Vec::new(),
        columns: ["Rule", "Title", "Stop when", "Current value", "Status"].map(String::from).to_vec(),
        rows: Vec::new(),
        empty: "No stopping rules configured.".to_string(),
    };
    t.rows = s
        .stopping_rules
        .iter()
        .map(|r| Row {
            stub: Vec::new(),
            cells: vec![
                Cell::text(r.rule_id.as_str()),
                Cell::text(r.title.as_str()),
                Cell::text(r.threshold.as_str()),
                Cell::text(r.current.as_str()),
                Cell::text(if r.fired { "FIRED" } else { "not fired" }),
            ],
            strong: r.fired,
            indent: false,
        })
        .collect();
    Section {
        title: "Stopping rules".to_string(),
        notes: vec![
            "Each rule as configured in the trial's rule file, restated with its current value.".to_string()
        ],
        tables: vec![t],
        ..Section::default()
    }
}

//! `vigil replay`: re-evaluate stored history with a rule set, send nothing, and compare
//! with the alerts that fired — the impact of a rule change before it goes live.

use crate::model::{Record, SubjectHistory};
use crate::rules::eval::{all as evaluate_all, histories_at};
use crate::rules::{RuleSet, ScheduledVisit};
use crate::store::AlertRow;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// One alert, fired or that would fire, keyed by rule, subject and episode.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Item {
    pub rule: String,
    pub subject: String,
    pub episode: String,
    pub level: i64,
    pub severity: String,
    pub summary: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub from: Option<DateTime<Utc>>,
    pub to: DateTime<Utc>,
    /// Fired and would fire again (at the same or another level).
    pub kept: Vec<Item>,
    /// Would fire but did not (or would fire at a higher level than it did).
    pub appear: Vec<Item>,
    /// Fired but would not fire now.
    pub vanish: Vec<Item>,
}

type Key = (String, String, String);

pub fn compare(
    rules: &RuleSet,
    histories: &[SubjectHistory],
    fired: &[AlertRow],
    from: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
    schedule: &[ScheduledVisit],
) -> Diff {
    let records: Vec<Record> = histories.iter().flat_map(|h| h.records.iter().cloned()).collect();
    let now = histories_at(&records, to);
    let mut would: BTreeMap<Key, Item> = BTreeMap::new();
    for f in evaluate_all(rules, &now, to, schedule) {
        let item = Item {
            rule: f.rule,
            subject: f.subject.unwrap_or_default(),
            episode: f.finding.episode,
            level: f.finding.level,
            severity: f.finding.severity.to_string(),
            summary: f.finding.summary,
        };
        let key = (item.rule.clone(), item.subject.clone(), item.episode.clone());
        if would.get(&key).is_none_or(|w| w.level < item.level) {
            would.insert(key, item);
        }
    }
    let mut did: BTreeMap<Key, Item> = BTreeMap::new();
    for a in fired.iter().filter(|a| from.is_none_or(|f| a.raised_at >= f) && a.raised_at <= to) {
        let key = (a.rule_id.clone(), a.subject.clone(), a.episode.clone());
        if did.get(&key).is_none_or(|d| d.level < a.level) {
            did.insert(
                key,
                Item {
                    rule: a.rule_id.clone(),
                    subject: a.subject.clone(),
                    episode: a.episode.clone(),
                    level: a.level,
                    severity: a.severity.to_string(),
                    summary: a.summary.clone(),
                },
            );
        }
    }
    let mut diff = Diff { from, to, kept: Vec::new(), appear: Vec::new(), vanish: Vec::new() };
    for (key, item) in &would {
        match did.get(key) {
            Some(d) if d.level >= item.level => diff.kept.push(item.clone()),
            _ => diff.appear.push(item.clone()),
        }
    }
    diff.vanish = did.into_iter().filter(|(k, _)| !would.contains_key(k)).map(|(_, v)| v).collect();
    diff
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = |f: &mut fmt::Formatter<'_>, sign: char, i: &Item| {
            writeln!(
                f,
                "{sign} [{}] {} {} ({}, level {}): {}",
                i.severity.to_uppercase(),
                i.rule,
                if i.subject.is_empty() { "cohort" } else { &i.subject },
                i.episode,
                i.level,
                i.summary
            )
        };
        for i in &self.appear {
            line(f, '+', i)?;
        }
        for i in &self.vanish {
            line(f, '-', i)?;
        }
        writeln!(
            f,
            "{} would appear, {} would vanish, {} unchanged (as of {})",
            self.appear.len(),
            self.vanish.len(),
            self.kept.len(),
            self.to.to_rfc3339()
        )
    }
}

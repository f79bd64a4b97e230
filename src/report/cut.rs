//! The data cut: which records and subjects a report sees, and how it sees them.
//!
//! One history per subject id (histories sharing an id are merged), without the records
//! dated after the cut-off; the report's visit order; study days; and the treatment arm,
//! which is read here only, and only for a closed report.

use crate::model::{ClinicalTime, Dose, SubjectHistory, SubjectId};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// The group of closed-report subjects whose records name no arm.
pub const NO_ARM: &str = "Arm not recorded";

/// One subject as the report sees it: the history up to the cut-off, and the arm (closed
/// report only).
#[derive(Clone, Copy)]
pub(crate) struct Member<'a> {
    pub h: &'a SubjectHistory,
    pub arm: Option<&'a str>,
    pub dosed: bool,
}

/// The only place the report reads the treatment arm: never for the open report.
pub(crate) fn arm_label(h: &SubjectHistory, closed: bool) -> Option<&str> {
    closed.then(|| h.arm().unwrap_or(NO_ARM))
}

/// One history per subject id, ordered by id, without the records dated after `as_of`
/// (records without any time are kept); subjects with nothing left are dropped. Also
/// returns how many records were left out.
pub(crate) fn data_cut(subjects: &[SubjectHistory], as_of: DateTime<Utc>) -> (Vec<SubjectHistory>, usize) {
    let mut by_id: BTreeMap<&SubjectId, Vec<&crate::model::Record>> = BTreeMap::new();
    let mut after = 0;
    for h in subjects {
        let kept = by_id.entry(&h.subject).or_default();
        for r in &h.records {
            if r.when().is_some_and(|t| t.earliest() > as_of) {
                after += 1;
            } else {
                kept.push(r);
            }
        }
    }
    let cut = by_id
        .into_iter()
        .filter(|(_, records)| !records.is_empty())
        .map(|(id, records)| SubjectHistory::new(id.clone(), records.into_iter().cloned().collect()))
        .collect();
    (cut, after)
}

/// Protocol visits in their given order, then every other label by first date (undated
/// last), ties by label.
pub(crate) fn order_visits(listed: &[String], subjects: &[SubjectHistory]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in listed {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    let mut first: BTreeMap<&str, Option<DateTime<Utc>>> = BTreeMap::new();
    for r in subjects.iter().flat_map(|h| &h.records) {
        let Some(v) = r.visit.as_deref() else {
            continue;
        };
        if listed.iter().any(|l| l == v) {
            continue;
        }
        let t = r.when().map(ClinicalTime::earliest);
        let slot = first.entry(v).or_insert(t);
        *slot = match (*slot, t) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let mut rest: Vec<(bool, Option<DateTime<Utc>>, &str)> =
        first.into_iter().map(|(v, t)| (t.is_none(), t, v)).collect();
    rest.sort();
    out.extend(rest.into_iter().map(|(_, _, v)| v.to_string()));
    out
}

/// Study day of `t` from the subject's first dose.
pub(crate) fn study_day(t: Option<&ClinicalTime>, doses: &[&Dose]) -> Option<i64> {
    t.zip(doses.first()).map(|(t, first)| t.study_day(&first.start))
}

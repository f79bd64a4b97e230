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

/// Tests through the whole report on the constructed cohort of `report::tests`.
#[cfg(test)]
mod report_tests {
    use crate::model::Record;
    use crate::report::tests::*;
    use crate::report::*;
    use chrono::TimeZone;

    #[test]
    fn histories_sharing_a_subject_id_are_counted_once() {
        let mut subjects = cohort();
        let extra = history("KS-101", vec![rec("KS-101", "W24", "")]);
        subjects.push(extra);
        let s = Fixture::new(subjects).summary();
        assert_eq!(s.total.disposition.enrolled, 7);
        assert_eq!(s.total.disposition.completed("W24"), Some(5));
    }

    #[test]
    fn records_after_the_cutoff_are_left_out() {
        let mut f = Fixture::new(cohort());
        // Between D7 (2019-03-11) and W4 (2019-04-01): KS-101's headache is still grade 2.
        f.as_of = chrono::Utc.with_ymd_and_hms(2019, 3, 20, 0, 0, 0).unwrap();
        f.alerts = vec![
            alert(1, "KS-101", "warning", "open", (2019, 3, 11)),
            alert(2, "KS-101", "critical", "open", (2019, 4, 1)),
        ];
        // A record without any time is kept.
        f.subjects[6].records.push(Record::from_json(r#"{"subject":"KS-107","site":"KS"}"#).unwrap());
        let s = f.summary();
        let g = s.total.adverse_events.grades;
        assert_eq!(g.grade(2), Tally { events: 2, subjects: 1 }, "the grade 3 version came after the cut");
        assert_eq!(g.grade(3), Tally::default());
        assert_eq!(s.total.adverse_events.serious, Tally::default());
        assert_eq!(s.total.disposition.completed("W12"), Some(0));
        assert!(s.total.edss.by_visit.is_empty());
        assert_eq!(s.alerts.total, 1);
        assert_eq!(s.data_quality.alerts_after_cutoff, 1);
        // W4 ×6, W12 ×6, W24 ×5, W48 ×5, the W4 headache, KS-106's W12 infection, KS-102's UNS.
        assert_eq!(s.data_quality.records_after_cutoff, 6 + 6 + 5 + 5 + 3);
        assert_eq!(s.total.disposition.screened, 7);
    }

    #[test]
    fn subjects_without_an_arm_are_their_own_group_in_the_closed_report() {
        let mut subjects = cohort();
        for r in &mut subjects[0].records {
            r.arm = None;
        }
        let mut f = Fixture::new(subjects);
        f.closed = true;
        let s = f.summary();
        assert_eq!(s.arm(NO_ARM).map(|g| g.n()), Some(1));
        assert_eq!(s.data_quality.subjects_without_arm, 1);
    }
}

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

/// The only place the report reads the treatment arm: never for the open report. The
/// closed report splits by the treatment actually received (SDTM ACTARM, the native
/// `actual_arm`), else the planned arm: a safety analysis counts what a subject received.
pub(crate) fn arm_label(h: &SubjectHistory, closed: bool) -> Option<&str> {
    closed.then(|| h.actual_arm().unwrap_or(NO_ARM))
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

/// Protocol visits in their given order; every other label goes where its typical study
/// day puts it (the median over dosed subjects' records, day 1 = first dose), before the
/// first listed visit that is typically later: an unlisted screening visit comes first,
/// not after W48. Labels with no study day (seen only in undosed subjects) go before the
/// first listed visit first seen later; undated labels last; ties by label.
pub(crate) fn order_visits(listed: &[String], subjects: &[SubjectHistory]) -> Vec<String> {
    let mut days: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut first: BTreeMap<&str, Option<DateTime<Utc>>> = BTreeMap::new();
    for h in subjects {
        let dose = h.first_dose().map(|d| d.start.clone());
        for r in &h.records {
            let Some(v) = r.visit.as_deref() else {
                continue;
            };
            let t = r.when();
            if let Some((t, dose)) = t.zip(dose.as_ref()) {
                days.entry(v).or_default().push(t.study_day(dose));
            }
            let t = t.map(ClinicalTime::earliest);
            let slot = first.entry(v).or_insert(t);
            *slot = match (*slot, t) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    let typical = |v: &str| {
        days.get(v).map(|d| {
            let mut d = d.clone();
            d.sort_unstable();
            d[d.len() / 2]
        })
    };
    let mut out: Vec<String> = Vec::new();
    for v in listed {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    let unlisted: Vec<&str> = first.keys().copied().filter(|v| !listed.iter().any(|l| l == v)).collect();
    let mut by_day: Vec<(i64, &str)> = unlisted.iter().filter_map(|v| typical(v).map(|d| (d, *v))).collect();
    by_day.sort();
    for (day, v) in by_day {
        // Before the first listed visit that is typically later; listed visits without
        // a study day keep their place.
        let at = out
            .iter()
            .position(|o| listed.contains(o) && typical(o).is_some_and(|d| d > day))
            .unwrap_or(out.len());
        out.insert(at, v.to_string());
    }
    // Seen only in undosed subjects (e.g. screen failures): by calendar date instead.
    let mut rest: Vec<(bool, Option<DateTime<Utc>>, &str)> = unlisted
        .iter()
        .filter(|v| typical(v).is_none())
        .map(|v| (first[v].is_none(), first[v], *v))
        .collect();
    rest.sort();
    for (_, t, v) in rest {
        let later = |o: &String| {
            listed.contains(o) && t.zip(first.get(o.as_str()).copied().flatten()).is_some_and(|(t, o)| o > t)
        };
        let at = out.iter().position(later).unwrap_or(out.len());
        out.insert(at, v.to_string());
    }
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
    fn unlisted_visits_go_by_their_typical_study_day() {
        // SCR (not listed) is 12 days before the first dose; UNS falls between W12 and W24.
        let mut subjects = cohort();
        for (i, h) in subjects.iter_mut().enumerate().take(6) {
            h.records.push(rec(&format!("KS-10{}", i + 1), "SCR", ""));
        }
        let s = Fixture::new(subjects).summary();
        assert_eq!(s.visits, ["SCR", "BL", "H2", "D7", "W4", "W12", "UNS", "W24", "W48"]);
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

    #[test]
    fn the_closed_report_splits_by_the_treatment_actually_received() {
        let mut subjects = cohort();
        // KS-104 was randomised to the high dose but received the low dose.
        subjects[3].records.push(
            Record::from_json(&format!(r#"{{"subject":"KS-104","arm":"{ARM}","actual_arm":"{LOW}"}}"#))
                .unwrap(),
        );
        let mut f = Fixture::new(subjects);
        f.closed = true;
        let s = f.summary();
        assert_eq!(s.arm(LOW).map(|g| g.n()), Some(1), "KS-104 counts in the arm it received");
        assert_eq!(s.arm(ARM).map(|g| g.n()), Some(5));
        // Never in the open report.
        f.closed = false;
        assert!(!f.html().contains(LOW));
    }
}

//! Section "EDSS change from baseline": per visit, the change from each subject's first
//! EDSS (worse, stable or better by the trial's minimum change), confirmed disability
//! worsening (`rules::progression`), and the chart of EDSS trajectories.

use super::per_group;
use crate::model::{ClinicalTime, Edss, MinimumChange};
use crate::report::charts;
use crate::report::cut::Member;
use crate::report::document::{Cell, Chart, Row, Section, Table};
use crate::report::{DsmbInput, DsmbSummary};
use crate::rules::progression::{self, EventKind, EventStatus, ProgressionParams};
use crate::rules::EdssRule;
use chrono::NaiveDate;
use std::collections::BTreeMap;

/// EDSS change from each subject's first EDSS, at one visit.
#[derive(Debug, Clone, PartialEq)]
pub struct EdssAtVisit {
    pub visit: String,
    /// Subjects with a post-baseline assessment at this visit.
    pub assessed: usize,
    pub mean_change: f64,
    pub worse: usize,
    pub stable: usize,
    pub better: usize,
}

impl EdssAtVisit {
    /// `EDSS worse than baseline at {visit}: {worse} of {assessed} (stable {s}, better {b})`
    pub fn sentence(&self) -> String {
        format!(
            "EDSS worse than baseline at {}: {} of {} (stable {}, better {})",
            self.visit, self.worse, self.assessed, self.stable, self.better
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EdssSummary {
    /// Subjects with at least one EDSS (their first one is the baseline).
    pub baseline_subjects: usize,
    pub baseline_mean: Option<f64>,
    /// One row per visit with post-baseline assessments, in visit order.
    pub by_visit: Vec<EdssAtVisit>,
    /// Subjects with at least two EDSS assessments (who can show a worsening).
    pub followed: usize,
    /// Subjects with a confirmed disability worsening (`rules::progression::assess` with
    /// the whole definition of the trial's disability rule).
    pub confirmed_worsening: usize,
    /// Subjects whose earliest worsening still awaits confirmation at the cut-off.
    pub pending_worsening: usize,
}

impl EdssSummary {
    pub fn at(&self, visit: &str) -> Option<&EdssAtVisit> {
        self.by_visit.iter().find(|v| v.visit == visit)
    }

    /// `Confirmed EDSS worsening: {n} of {followed} subjects followed (pending: {p})`
    pub fn confirmed_sentence(&self) -> String {
        format!(
            "Confirmed EDSS worsening: {} of {} subjects with a follow-up assessment (awaiting confirmation: {})",
            self.confirmed_worsening, self.followed, self.pending_worsening
        )
    }
}

#[derive(Default)]
struct EdssAcc {
    assessed: usize,
    change_halves: i64,
    worse: usize,
    stable: usize,
    better: usize,
}

/// Per visit: the change from each subject's first EDSS. When a subject has two
/// post-baseline assessments with the same label, the later one counts.
pub(crate) fn edss_summary(members: &[Member], visits: &[String], input: &DsmbInput) -> EdssSummary {
    let params = &input.edss_rule.params;
    let min_change = &params.min_change;
    let mut acc: BTreeMap<String, EdssAcc> = BTreeMap::new();
    let mut baselines: Vec<Edss> = Vec::new();
    let (mut followed, mut confirmed, mut pending) = (0, 0, 0);
    for m in members {
        let assessments = m.h.edss();
        let Some((first, later)) = assessments.split_first() else {
            continue;
        };
        if !later.is_empty() {
            followed += 1;
            let relapses: Vec<NaiveDate> = m.h.relapses().into_iter().map(ClinicalTime::day).collect();
            let events = progression::assess(&assessments, &relapses, params);
            let worsening =
                |s: EventStatus| events.iter().any(|e| e.kind == EventKind::Worsening && e.status == s);
            if worsening(EventStatus::Confirmed) {
                confirmed += 1;
            } else if events.iter().any(|e| e.awaiting_confirmation(input.as_of.date_naive())) {
                pending += 1;
            }
        }
        let baseline = first.score;
        baselines.push(baseline);
        let mut at_visit: BTreeMap<&str, Edss> = BTreeMap::new();
        for a in later {
            if let Some(v) = a.visit.as_deref() {
                at_visit.insert(v, a.score);
            }
        }
        for (v, score) in at_visit {
            let e = acc.entry(v.to_string()).or_default();
            e.assessed += 1;
            e.change_halves += i64::from(score.halves()) - i64::from(baseline.halves());
            if min_change.is_worse(baseline, score) {
                e.worse += 1;
            } else if min_change.is_better(baseline, score) {
                e.better += 1;
            } else {
                e.stable += 1;
            }
        }
    }
    let by_visit = visits
        .iter()
        .filter_map(|v| {
            let e = acc.get(v).filter(|e| e.assessed > 0)?;
            Some(EdssAtVisit {
                visit: v.clone(),
                assessed: e.assessed,
                mean_change: e.change_halves as f64 / 2.0 / e.assessed as f64,
                worse: e.worse,
                stable: e.stable,
                better: e.better,
            })
        })
        .collect();
    let baseline_mean = (!baselines.is_empty()).then(|| {
        let halves: u64 = baselines.iter().map(|b| u64::from(b.halves())).sum();
        halves as f64 / 2.0 / baselines.len() as f64
    });
    EdssSummary {
        baseline_subjects: baselines.len(),
        baseline_mean,
        by_visit,
        followed,
        confirmed_worsening: confirmed,
        pending_worsening: pending,
    }
}

// --- the section in the report ---------------------------------------------------------

/// Section "EDSS change from baseline".
pub(crate) fn section(rule: &EdssRule, s: &DsmbSummary) -> Section {
    let mut stub = vec!["Visit"];
    if s.closed {
        stub.insert(0, "Arm");
    }
    let mut rows = Vec::new();
    for g in s.groups() {
        for e in &g.edss.by_visit {
            let mut labels = vec![e.visit.clone()];
            if s.closed {
                labels.insert(0, g.label.clone());
            }
            rows.push(Row {
                stub: labels,
                cells: vec![
                    Cell::int(e.assessed),
                    Cell::Num { value: e.mean_change, places: 2, signed: true },
                    Cell::count(e.worse, e.assessed),
                    Cell::count(e.stable, e.assessed),
                    Cell::count(e.better, e.assessed),
                ],
                strong: false,
                indent: false,
            });
        }
    }
    let table = Table {
        id: "edss_by_visit".to_string(),
        title: "EDSS change from baseline by visit".to_string(),
        stub: stub.iter().map(|h| h.to_string()).collect(),
        groups: Vec::new(),
        columns: ["Assessed", "Mean change", "Worse n (%)", "Stable n (%)", "Better n (%)"]
            .map(String::from)
            .to_vec(),
        rows,
        empty: "No post-baseline EDSS assessments recorded.".to_string(),
    };
    let mut findings: Vec<String> = Vec::new();
    for g in s.groups() {
        let prefix = if s.closed { format!("{}: ", g.label) } else { String::new() };
        findings.extend(g.edss.by_visit.iter().map(|e| format!("{prefix}{}", e.sentence())));
        if g.edss.followed > 0 {
            findings.push(format!("{prefix}{}", g.edss.confirmed_sentence()));
        }
    }
    let baseline: Vec<String> = per_group(s, |g| {
        Some(format!(
            "Subjects with a baseline: {}{}.",
            g.edss.baseline_subjects,
            g.edss.baseline_mean.map(|m| format!(", mean baseline EDSS {m:.2}")).unwrap_or_default()
        ))
    });
    let mut notes = vec![format!(
        "Baseline is each subject's first EDSS. Worse or better means a change of at least the \
         trial's minimum ({}); anything smaller is stable. Percentages are of the subjects assessed \
         at the visit. Confirmed worsening {}: {}.",
        describe_rule(&rule.params.min_change),
        rule.id.as_ref().map_or("(no disability rule in the pack: the defaults)".to_string(), |id| format!(
            "as rule `{id}` defines it"
        )),
        describe_confirmation(&rule.params)
    )];
    notes.extend(baseline);
    Section {
        title: "EDSS change from baseline".to_string(),
        notes,
        findings,
        tables: vec![table],
        charts: vec![Chart {
            title: "EDSS trajectories".to_string(),
            caption: "EDSS of each dosed subject over study weeks (week 0 = first dose), one line per \
                      subject."
                .to_string(),
            svg: charts::edss(&s.charts.edss, s.closed),
        }],
    }
}

/// "confirmed at least 84 days later (7 days early accepted, no upper limit), fixed
/// baseline, no baseline or confirmation within 30 days after a relapse"
fn describe_confirmation(p: &ProgressionParams) -> String {
    let mut text = format!(
        "confirmed at least {} days later ({} days early accepted, {}), {} baseline",
        p.confirm_after_days,
        p.confirm_tolerance_before_days,
        p.confirm_tolerance_after_days
            .map_or("no upper limit".to_string(), |d| format!("up to {d} days late")),
        match p.baseline {
            progression::Baseline::Fixed => "fixed (first EDSS)",
            progression::Baseline::Roving => "roving (moves after every confirmed change)",
        },
    );
    if p.relapse_exclusion_days > 0 {
        text.push_str(&format!(
            ", no baseline or confirmation within {} days after a relapse",
            p.relapse_exclusion_days
        ));
    }
    if p.sustained {
        text.push_str(", sustained to the last visit");
    }
    text
}

/// "baseline ≤ 0.0: +1.5; baseline ≤ 5.0: +1.0; higher baseline: +0.5"
fn describe_rule(rule: &MinimumChange) -> String {
    rule.steps()
        .iter()
        .map(|s| match s.baseline_up_to {
            Some(up) => format!("baseline ≤ {up:.1}: {:+.1}", s.by),
            None => format!("higher baseline: {:+.1}", s.by),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_is_described_from_its_steps() {
        assert_eq!(
            describe_rule(&MinimumChange::variant_a()),
            "baseline ≤ 0.0: +1.5; baseline ≤ 5.0: +1.0; higher baseline: +0.5"
        );
    }
}

/// Tests through the whole report on the constructed cohort of `report::tests`.
#[cfg(test)]
mod report_tests {
    use crate::report::tests::*;

    #[test]
    fn edss_change_from_baseline_by_construction() {
        let s = Fixture::new(cohort()).summary();
        assert_eq!(s.total.edss.baseline_subjects, 7);
        assert!((s.total.edss.baseline_mean.unwrap() - 32.5 / 7.0).abs() < 1e-9);
        let visits: Vec<&str> = s.total.edss.by_visit.iter().map(|v| v.visit.as_str()).collect();
        assert_eq!(visits, ["W12", "W48"], "baseline-only visits have no row");

        let w12 = s.total.edss.at("W12").unwrap();
        assert_eq!((w12.assessed, w12.worse, w12.stable, w12.better), (6, 0, 6, 0));
        assert_eq!(w12.mean_change, 0.0);

        let w48 = s.total.edss.at("W48").unwrap();
        assert_eq!(w48.assessed, 5);
        assert_eq!(w48.worse, 3, "KS-101, KS-102, KS-103");
        assert_eq!(w48.stable, 1, "KS-104: +0.5 from 4.0 is not worse");
        assert_eq!(w48.better, 1, "KS-105");
        assert!((w48.mean_change - 0.3).abs() < 1e-9);
        assert_eq!(w48.sentence(), "EDSS worse than baseline at W48: 3 of 5 (stable 1, better 1)");
    }

    #[test]
    fn the_edss_rule_of_the_trial_decides_worse() {
        let mut f = Fixture::new(cohort());
        f.rule.params.min_change = crate::model::MinimumChange::variant_b();
        let w48 = f.summary().total.edss.at("W48").cloned().unwrap();
        // Under variant B, +0.5 from 5.5 (KS-102) is no longer worse.
        assert_eq!((w48.worse, w48.stable, w48.better), (2, 2, 1));
        assert!(f.html().contains("EDSS worse than baseline at W48: 2 of 5"));
    }

    /// The cohort and KS-109: 2.0 → 3.5 at W12 (+1.5), still 3.5 at W24 (84 days later),
    /// nothing after — confirmed under a 12-week definition, not under a 24-week one.
    fn cohort_with_ks109() -> Vec<crate::model::SubjectHistory> {
        let mut subjects = cohort();
        subjects.push(history(
            "KS-109",
            vec![
                rec("KS-109", "BL", &format!("{},{DOSE}", edss(2.0))),
                rec("KS-109", "W12", &edss(3.5)),
                rec("KS-109", "W24", &edss(3.5)),
            ],
        ));
        subjects
    }

    #[test]
    fn confirmed_worsening_uses_the_progression_rules() {
        let f = Fixture::new(cohort_with_ks109());
        let e = f.summary().total.edss;
        assert_eq!(e.followed, 7);
        assert_eq!(e.confirmed_worsening, 1);
        assert_eq!(e.pending_worsening, 3, "KS-101, KS-102, KS-103 worsened at W48, the last visit");
        assert!(f.html().contains(
        "Confirmed EDSS worsening: 1 of 7 subjects with a follow-up assessment (awaiting confirmation: 3)"
    ));
    }

    #[test]
    fn confirmed_worsening_uses_the_whole_definition_of_the_cited_rule() {
        let mut f = Fixture::new(cohort_with_ks109());
        assert_eq!(f.summary().total.edss.confirmed_worsening, 1, "12 weeks: W24 confirms");
        // The pack's rule asks for 24 weeks: W24 is too early and no later visit exists.
        let yaml = "rules:\n  - id: edss-24w\n    kind: disability_progression\n    score: EDSS\n    \
                    confirm_after: 24w\n    severity: warning\n";
        let rules = crate::rules::parse_rules(std::path::Path::new("r.yaml"), yaml).unwrap();
        f.rule = crate::rules::RuleSet { rules }.edss_rule();
        let e = f.summary().total.edss;
        assert_eq!(e.confirmed_worsening, 0);
        let html = f.html();
        assert!(html.contains("as rule `edss-24w` defines it"), "the report cites the rule");
        assert!(html.contains("confirmed at least 168 days later"));
        // A relapse 10 days before W24 makes W24 unusable as confirmation (30-day window)...
        f.rule = crate::rules::EdssRule::default();
        let relapse = rec_on("KS-109", "2019-08-09", r#","relapse":{"onset":"2019-08-09"}"#);
        f.subjects.last_mut().unwrap().records.push(relapse);
        assert_eq!(f.summary().total.edss.confirmed_worsening, 0);
        // ... unless the rule's relapse window is shorter.
        f.rule.params.relapse_exclusion_days = 5;
        assert_eq!(f.summary().total.edss.confirmed_worsening, 1);
    }
}

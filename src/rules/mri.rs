//! `mri_activity`: new or enlarging T2 lesions, Gd-enhancing lesions, or both, at a scan.
//! Episode = the scan; level = the lesion count, so a corrected higher count re-alerts.

use super::progression::ProgressionParams;
use super::Kind;
use super::{study_day_text, Context, Finding};
use crate::model::{Mri, SubjectHistory};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MriRule {
    pub measure: Measure,
    #[serde(default = "one")]
    pub at_least: u32,
    /// For `neda3_loss`: the assessment period from the first dose (default 48 weeks).
    pub period: Option<super::Span>,
    /// For `neda3_loss`: the id of the `disability_progression` rule whose whole definition
    /// decides "confirmed EDSS worsening" (absent: the defaults of `ProgressionParams`).
    pub worsening: Option<String>,
    /// That rule's definition, filled in at load (`resolve_worsening`).
    #[serde(skip)]
    pub progression: Option<ProgressionParams>,
}

/// Combined unique active lesions of a scan, as (firm count, upper bound). A lesion can be
/// both new T2 and enhancing: with the reported unique count (`combined_active`) both are
/// that count; without it, the firm count is max(T2, Gd+) and the upper bound T2 + Gd+.
pub fn combined_active(scan: &Mri) -> Option<(u32, u32)> {
    match (scan.combined_active, scan.t2_new_or_enlarging, scan.gd_enhancing) {
        (Some(c), _, _) => Some((c, c)),
        (None, None, None) => None,
        (None, a, b) => {
            let (a, b) = (a.unwrap_or(0), b.unwrap_or(0));
            Some((a.max(b), a + b))
        }
    }
}

/// Gives every NEDA-3 rule the definition of the disability rule it names. Returns the
/// problems as (index of the rule, message).
pub(crate) fn resolve_worsening(rules: &mut [super::Rule]) -> Vec<(usize, String)> {
    let disability: Vec<(String, ProgressionParams)> = rules
        .iter()
        .filter_map(|r| match &r.kind {
            super::RuleKind::DisabilityProgression(d) => Some((r.id.clone(), d.params.clone())),
            _ => None,
        })
        .collect();
    let mut problems = Vec::new();
    for (i, r) in rules.iter_mut().enumerate() {
        let super::RuleKind::MriActivity(m) = &mut r.kind else { continue };
        let Some(id) = &m.worsening else { continue };
        match disability.iter().find(|(d, _)| d == id) {
            Some((_, params)) => m.progression = Some(params.clone()),
            None => problems.push((
                i,
                format!("worsening: no disability_progression rule has the id `{id}`"),
            )),
        }
    }
    problems
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    T2NewOrEnlarging,
    GdEnhancing,
    /// Combined unique active lesions (`combined_active`): the scan's unique count when
    /// reported, else max(T2, Gd+) for sure and T2 + Gd+ at most (see `combined_active`).
    CombinedActive,
    /// Loss of "no evidence of disease activity" (NEDA-3) within the period: a relapse,
    /// MRI activity (new/enlarging T2 or Gd+), or a confirmed EDSS worsening as the rule
    /// named by `worsening` defines it, whichever comes first.
    Neda3Loss,
}

impl Measure {
    fn label(self) -> &'static str {
        match self {
            Self::T2NewOrEnlarging => "new or enlarging T2 lesions",
            Self::GdEnhancing => "Gd-enhancing lesions",
            Self::CombinedActive => "combined active lesions (new/enlarging T2 or Gd+, each lesion once)",
            Self::Neda3Loss => "loss of NEDA-3",
        }
    }
}

impl MriRule {
    /// What serde cannot see.
    fn validate(&self) -> Result<(), (String, String)> {
        if self.at_least == 0 {
            return Err(("at_least".into(), "at_least: 0 would fire on every scan".into()));
        }
        if self.worsening.is_some() && self.measure != Measure::Neda3Loss {
            return Err(("worsening".into(), "only `measure: neda3_loss` uses a disability rule".into()));
        }
        Ok(())
    }

    /// NEDA-3 components that failed within the period, as (study day text, what).
    fn neda3_losses(&self, h: &SubjectHistory) -> Vec<(chrono::NaiveDate, String)> {
        let Some(start) = h.first_dose().map(|d| d.start.day()) else { return Vec::new() };
        let end = start + self.period.unwrap_or(super::Span::from_days(48 * 7)).chrono();
        let inside = |d: chrono::NaiveDate| d >= start && d <= end;
        let mut lost = Vec::new();
        for r in h.relapses().into_iter().filter(|t| inside(t.day())) {
            lost.push((r.day(), format!("relapse ({})", study_day_text(h, r))));
        }
        for (_, scan) in h.mri() {
            let Some((firm, upper)) = combined_active(&scan) else { continue };
            if upper > 0 && inside(scan.date.day()) {
                let count = if firm == upper {
                    format!("{firm} active lesions")
                } else {
                    format!("{firm} to {upper} active lesions (overlap of new T2 and Gd+ not reported)")
                };
                lost.push((scan.date.day(), format!("MRI activity, {count} ({})", study_day_text(h, &scan.date))));
            }
        }
        let default = ProgressionParams::default();
        let params = self.progression.as_ref().unwrap_or(&default);
        let relapses: Vec<chrono::NaiveDate> = h.relapses().iter().map(|t| t.day()).collect();
        for e in super::progression::assess(&h.edss(), &relapses, params) {
            if let Some(c) =
                e.confirmation.as_ref().filter(|_| e.kind == super::progression::EventKind::Worsening)
            {
                if inside(c.date) {
                    lost.push((
                        c.date,
                        format!("confirmed EDSS worsening {} → {}", e.baseline.score, e.onset.score),
                    ));
                }
            }
        }
        lost.sort();
        lost
    }
}

impl Kind for MriRule {
    const NAME: &'static str = "mri_activity";
    type Params = Self;

    fn check(rule: Self) -> Result<Self, (String, String)> {
        rule.validate().map(|()| rule)
    }

    fn evaluate(&self, h: &SubjectHistory, ctx: &Context) -> Vec<Finding> {
        let severity = ctx.severity;
        if self.measure == Measure::Neda3Loss {
            let lost = self.neda3_losses(h);
            if lost.is_empty() {
                return Vec::new();
            }
            let what: Vec<&str> = lost.iter().map(|(_, w)| w.as_str()).collect();
            return vec![Finding {
                episode: "neda3".into(),
                clinical_time: lost.first().map(|(d, _)| super::day_start(*d)),
                level: 1,
                severity,
                title: None,
                summary: format!("NEDA-3 lost: {}.", what.join("; ")),
                why: "a relapse, MRI activity or confirmed disability worsening within the assessment period"
                    .into(),
                evidence: json!({"components": what}),
            }];
        }
        let mut out = Vec::new();
        for (visit, scan) in h.mri() {
            // (firm count, upper bound): they differ only for combined counts without the
            // reported unique count.
            let counts = match self.measure {
                Measure::T2NewOrEnlarging => scan.t2_new_or_enlarging.map(|c| (c, c)),
                Measure::GdEnhancing => scan.gd_enhancing.map(|c| (c, c)),
                Measure::CombinedActive | Measure::Neda3Loss => combined_active(&scan),
            };
            // Doubt raises the alert: an upper bound at the threshold is enough.
            let Some((count, upper)) = counts.filter(|(_, upper)| *upper >= self.at_least) else {
                continue;
            };
            let at = match visit {
                Some(v) => format!("visit {v}, {}", study_day_text(h, &scan.date)),
                None => study_day_text(h, &scan.date),
            };
            let against = match scan.reference {
                crate::model::MriReference::Previous => "the previous scan",
                crate::model::MriReference::Baseline => "the baseline scan",
            };
            let (summary, why) = if count >= self.at_least {
                (
                    format!("MRI at {at}: {count} {} compared with {against}.", self.measure.label()),
                    format!("{count} >= {}", self.at_least),
                )
            } else {
                (
                    format!(
                        "MRI at {at}: cannot exclude ≥ {} combined active lesions: overlap of new T2 and Gd+ \
                         not reported ({} new/enlarging T2, {} Gd+, compared with {against}).",
                        self.at_least,
                        scan.t2_new_or_enlarging.unwrap_or(0),
                        scan.gd_enhancing.unwrap_or(0)
                    ),
                    format!(
                        "between {count} and {upper} unique lesions; {upper} >= {} is possible",
                        self.at_least
                    ),
                )
            };
            out.push(Finding {
                episode: format!("mri:{}", scan.date.raw()),
                clinical_time: Some(scan.date.earliest()),
                // The firm count: a reported unique count at or above it raises a new alert.
                level: i64::from(count),
                severity,
                title: None,
                summary,
                why,
                evidence: json!({"scan": scan, "visit": visit, "threshold": {"measure": self.measure.label(), "at_least": self.at_least}}),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Record, SubjectId};
    use crate::rules::Severity;

    fn ctx(severity: Severity) -> Context<'static> {
        Context { severity, as_of: chrono::Utc::now(), schedule: &[] }
    }

    #[test]
    fn new_t2_lesions_fire_once_per_scan() {
        let h = SubjectHistory::new(
            SubjectId::parse("KS-102").unwrap(),
            [
                r#"{"subject":"KS-102","visit":"W12","date":"2019-05-20","mri":{"t2_new_or_enlarging":0,"gd_enhancing":0}}"#,
                r#"{"subject":"KS-102","visit":"W48","date":"2020-01-20","mri":{"t2_new_or_enlarging":2,"gd_enhancing":1}}"#,
            ]
            .iter()
            .map(|j| Record::from_json(j).unwrap())
            .collect(),
        );
        let r: MriRule = serde_yaml::from_str("measure: t2_new_or_enlarging").unwrap();
        let f = r.evaluate(&h, &ctx(Severity::Warning));
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].episode.as_str(), f[0].level), ("mri:2020-01-20", 2));
        assert!(f[0].summary.contains("visit W48"));
        let c: MriRule = serde_yaml::from_str("measure: combined_active\nat_least: 2").unwrap();
        assert_eq!(c.evaluate(&h, &ctx(Severity::Warning))[0].level, 2, "max(2, 1) for sure");
        let g: MriRule = serde_yaml::from_str("measure: gd_enhancing\nat_least: 2").unwrap();
        assert!(g.evaluate(&h, &ctx(Severity::Warning)).is_empty());
    }

    #[test]
    fn neda3_is_lost_by_relapse_mri_activity_or_confirmed_worsening() {
        let rule: MriRule = serde_yaml::from_str("measure: neda3_loss").unwrap();
        let h = |extra: &[&str]| {
            let mut r = vec![
                r#"{"subject":"A","visit":"BL","date":"2019-01-01","doses":[{"start":"2019-01-01T09:00:00Z"}],"scores":[{"name":"EDSS","value":3.0}]}"#.to_string(),
            ];
            r.extend(extra.iter().map(|s| s.to_string()));
            SubjectHistory::new(
                SubjectId::parse("A").unwrap(),
                r.iter().map(|j| Record::from_json(j).unwrap()).collect(),
            )
        };
        let quiet = h(&[
            r#"{"subject":"A","visit":"W12","date":"2019-03-26","mri":{"t2_new_or_enlarging":0,"gd_enhancing":0},"scores":[{"name":"EDSS","value":3.5}]}"#,
        ]);
        assert!(rule.evaluate(&quiet, &ctx(Severity::Warning)).is_empty());
        let relapse = h(&[r#"{"subject":"A","visit":"U1","date":"2019-05-01","relapse":true}"#]);
        assert!(rule.evaluate(&relapse, &ctx(Severity::Warning))[0].summary.contains("relapse"));
        let late = h(&[r#"{"subject":"A","visit":"U2","date":"2020-06-01","relapse":true}"#]);
        assert!(rule.evaluate(&late, &ctx(Severity::Warning)).is_empty(), "outside the 48-week period");
        let cdw = h(&[
            r#"{"subject":"A","visit":"W12","date":"2019-03-26","scores":[{"name":"EDSS","value":4.0}]}"#,
            r#"{"subject":"A","visit":"W24","date":"2019-06-18","scores":[{"name":"EDSS","value":4.0}]}"#,
        ]);
        let f = rule.evaluate(&cdw, &ctx(Severity::Warning));
        assert!(f[0].summary.contains("confirmed EDSS worsening 3.0 → 4.0"), "{}", f[0].summary);
    }

    fn scan(mri: &str) -> SubjectHistory {
        let j = format!(r#"{{"subject":"A","visit":"W12","date":"2019-05-20","mri":{mri}}}"#);
        SubjectHistory::new(SubjectId::parse("A").unwrap(), vec![Record::from_json(&j).unwrap()])
    }

    #[test]
    fn a_lesion_both_new_t2_and_enhancing_is_not_counted_twice() {
        let rule: MriRule = serde_yaml::from_str("measure: combined_active\nat_least: 3").unwrap();
        // The reader says 2 unique lesions: the enhancing one is also the new T2 one.
        let unique = scan(r#"{"t2_new_or_enlarging":2,"gd_enhancing":1,"combined_active":2}"#);
        assert!(rule.evaluate(&unique, &ctx(Severity::Warning)).is_empty());
        let three = scan(r#"{"t2_new_or_enlarging":2,"gd_enhancing":1,"combined_active":3}"#);
        let f = rule.evaluate(&three, &ctx(Severity::Warning));
        assert_eq!(f[0].level, 3);
        assert!(!f[0].summary.contains("cannot exclude"), "{}", f[0].summary);
        // Overlap not reported: only T2 + Gd+ reaches 3, so the finding says it is doubt.
        let f = rule.evaluate(&scan(r#"{"t2_new_or_enlarging":2,"gd_enhancing":1}"#), &ctx(Severity::Warning));
        assert_eq!(f.len(), 1, "doubt raises the alert");
        assert_eq!(f[0].level, 2, "the firm count is max(T2, Gd+)");
        assert!(
            f[0].summary.contains("cannot exclude ≥ 3 combined active lesions: overlap of new T2 and Gd+ not reported"),
            "{}",
            f[0].summary
        );
        // max(T2, Gd+) at the threshold is firm.
        let f = rule.evaluate(&scan(r#"{"t2_new_or_enlarging":3,"gd_enhancing":1}"#), &ctx(Severity::Warning));
        assert_eq!(f[0].level, 3);
        assert!(!f[0].summary.contains("cannot exclude"));
        // An impossible unique count is refused at reading.
        let bad = r#"{"subject":"A","date":"2019-05-20","mri":{"t2_new_or_enlarging":2,"gd_enhancing":1,"combined_active":4}}"#;
        assert!(Record::from_json(bad).unwrap_err().to_string().contains("mri.combined_active"));
    }

    #[test]
    fn neda3_counts_unique_active_lesions() {
        let rule: MriRule = serde_yaml::from_str("measure: neda3_loss").unwrap();
        let dose = r#"{"subject":"A","visit":"BL","date":"2019-01-01","doses":[{"start":"2019-01-01T09:00:00Z"}]}"#;
        let mut h = scan(r#"{"t2_new_or_enlarging":2,"gd_enhancing":1,"combined_active":2}"#);
        h.records.insert(0, Record::from_json(dose).unwrap());
        let h = SubjectHistory::new(h.subject.clone(), h.records);
        let f = rule.evaluate(&h, &ctx(Severity::Info));
        assert!(f[0].summary.contains("MRI activity, 2 active lesions"), "{}", f[0].summary);
    }

    #[test]
    fn neda3_uses_the_whole_definition_of_the_disability_rule_it_names() {
        let file = |neda3_extra: &str| {
            format!(
                "rules:\n  - id: edss-24w\n    kind: disability_progression\n    score: EDSS\n    \
                 confirm_after: 24w\n    severity: warning\n  - id: neda3\n    kind: mri_activity\n    \
                 measure: neda3_loss\n    severity: info\n{neda3_extra}"
            )
        };
        let dir = tempfile::tempdir().unwrap();
        let load = |text: String| {
            let path = dir.path().join("r.yaml");
            std::fs::write(&path, text).unwrap();
            crate::rules::load_rules(&[path])
        };
        // 3.0 at the dose, 4.0 at W12 and still at W24 (12 weeks later), nothing after.
        let h = SubjectHistory::new(
            SubjectId::parse("A").unwrap(),
            [
                r#"{"subject":"A","visit":"BL","date":"2019-01-01","doses":[{"start":"2019-01-01T09:00:00Z"}],"scores":[{"name":"EDSS","value":3.0}]}"#,
                r#"{"subject":"A","visit":"W12","date":"2019-03-26","scores":[{"name":"EDSS","value":4.0}]}"#,
                r#"{"subject":"A","visit":"W24","date":"2019-06-18","scores":[{"name":"EDSS","value":4.0}]}"#,
            ]
            .iter()
            .map(|j| Record::from_json(j).unwrap())
            .collect(),
        );
        let as_of = chrono::Utc::now();
        let defaults = load(file("")).unwrap();
        assert_eq!(defaults.get("neda3").unwrap().evaluate(&h, as_of, &[]).len(), 1, "12 weeks by default");
        let named = load(file("    worsening: edss-24w\n")).unwrap();
        assert!(
            named.get("neda3").unwrap().evaluate(&h, as_of, &[]).is_empty(),
            "the named rule wants 24 weeks: W24 does not confirm"
        );
        let errors = load(file("    worsening: edss-48w\n")).unwrap_err();
        assert!(errors[0].to_string().contains("no disability_progression rule has the id `edss-48w`"));
    }
}

//! `mri_activity`: new or enlarging T2 lesions, Gd-enhancing lesions, or both, at a scan.
//! Episode = the scan; level = the lesion count, so a corrected higher count re-alerts.

use super::Kind;
use super::{study_day_text, Context, Finding};
use crate::model::SubjectHistory;
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
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    T2NewOrEnlarging,
    GdEnhancing,
    /// New/enlarging T2 plus Gd+ (an upper bound of combined unique active lesions when
    /// per-lesion data are not available).
    CombinedActive,
    /// Loss of "no evidence of disease activity" (NEDA-3) within the period: a relapse,
    /// MRI activity (new/enlarging T2 or Gd+), or a confirmed EDSS worsening (variant A,
    /// 12 weeks), whichever comes first.
    Neda3Loss,
}

impl Measure {
    fn label(self) -> &'static str {
        match self {
            Self::T2NewOrEnlarging => "new or enlarging T2 lesions",
            Self::GdEnhancing => "Gd-enhancing lesions",
            Self::CombinedActive => "active lesions (new/enlarging T2 + Gd+)",
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
            let active = scan.t2_new_or_enlarging.unwrap_or(0) + scan.gd_enhancing.unwrap_or(0);
            if active > 0 && inside(scan.date.day()) {
                lost.push((
                    scan.date.day(),
                    format!("MRI activity, {active} lesions ({})", study_day_text(h, &scan.date)),
                ));
            }
        }
        let params = super::progression::ProgressionParams::default();
        let relapses: Vec<chrono::NaiveDate> = h.relapses().iter().map(|t| t.day()).collect();
        for e in super::progression::assess(&h.edss(), &relapses, &params) {
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
            let count = match self.measure {
                Measure::T2NewOrEnlarging => scan.t2_new_or_enlarging,
                Measure::GdEnhancing => scan.gd_enhancing,
                Measure::CombinedActive | Measure::Neda3Loss => {
                    match (scan.t2_new_or_enlarging, scan.gd_enhancing) {
                        (None, None) => None,
                        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
                    }
                }
            };
            let Some(count) = count.filter(|c| *c >= self.at_least) else {
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
            out.push(Finding {
                episode: format!("mri:{}", scan.date.raw()),
                level: i64::from(count),
                severity,
                title: None,
                summary: format!("MRI at {at}: {count} {} compared with {against}.", self.measure.label()),
                why: format!("{count} >= {}", self.at_least),
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
        let c: MriRule = serde_yaml::from_str("measure: combined_active\nat_least: 3").unwrap();
        assert_eq!(c.evaluate(&h, &ctx(Severity::Warning))[0].level, 3);
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
}

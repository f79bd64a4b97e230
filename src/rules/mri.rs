//! `mri_activity`: new or enlarging T2 lesions, Gd-enhancing lesions, or both, at a scan.
//! Episode = the scan; level = the lesion count, so a corrected higher count re-alerts.

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
}

impl Measure {
    fn label(self) -> &'static str {
        match self {
            Self::T2NewOrEnlarging => "new or enlarging T2 lesions",
            Self::GdEnhancing => "Gd-enhancing lesions",
            Self::CombinedActive => "active lesions (new/enlarging T2 + Gd+)",
        }
    }
}

impl MriRule {
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        if self.at_least == 0 {
            return Err(("at_least".into(), "at_least: 0 would fire on every scan".into()));
        }
        Ok(())
    }

    pub(super) fn evaluate(&self, h: &SubjectHistory, ctx: &Context) -> Vec<Finding> {
        let severity = ctx.severity;
        let mut out = Vec::new();
        for (visit, scan) in h.mri() {
            let count = match self.measure {
                Measure::T2NewOrEnlarging => scan.t2_new_or_enlarging,
                Measure::GdEnhancing => scan.gd_enhancing,
                Measure::CombinedActive => match (scan.t2_new_or_enlarging, scan.gd_enhancing) {
                    (None, None) => None,
                    (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
                },
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
}

//! The minimum EDSS change that counts, which depends on the baseline (docs/clinical-reference.md §2.2).

use super::scales::Edss;
use serde::{Deserialize, Serialize};

/// One step of the table: baselines up to `baseline_up_to` (inclusive) need a change of `by`.
/// The last step has no bound and covers every higher baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeStep {
    #[serde(default)]
    pub baseline_up_to: Option<f64>,
    pub by: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinimumChange {
    steps: Vec<ChangeStep>,
}

impl MinimumChange {
    /// Checks that bounds rise, that only the last step is unbounded, and that every
    /// change is positive and a multiple of 0.5.
    pub fn new(steps: Vec<ChangeStep>) -> Result<Self, String> {
        if steps.is_empty() {
            return Err("needs at least one step".into());
        }
        let last = steps.len() - 1;
        let mut previous: Option<f64> = None;
        for (i, s) in steps.iter().enumerate() {
            if !(s.by > 0.0 && (s.by * 2.0).fract() == 0.0) {
                return Err(format!("step {}: `by: {}` must be a positive multiple of 0.5", i + 1, s.by));
            }
            match (s.baseline_up_to, i == last) {
                (None, false) => {
                    return Err(format!("step {}: only the last step may omit baseline_up_to", i + 1))
                }
                (Some(_), true) => {
                    return Err(
                        "the last step must omit baseline_up_to (it covers every higher baseline)".into()
                    )
                }
                (Some(b), false) => {
                    if previous.is_some_and(|p| b <= p) {
                        return Err(format!("step {}: baseline_up_to must rise from step to step", i + 1));
                    }
                    previous = Some(b);
                }
                (None, true) => {}
            }
        }
        Ok(Self { steps })
    }

    /// Variant A (registry standard, msprog): +1.5 from 0, +1.0 up to 5.0, +0.5 from 5.5.
    pub fn variant_a() -> Self {
        Self::from_table(&[(Some(0.0), 1.5), (Some(5.0), 1.0), (None, 0.5)])
    }
    /// Variant B (many trials): +1.5 from 0, +1.0 up to 5.5, +0.5 from 6.0.
    pub fn variant_b() -> Self {
        Self::from_table(&[(Some(0.0), 1.5), (Some(5.5), 1.0), (None, 0.5)])
    }
    /// Variant C (no 1.5 rule): +1.0 up to 5.0, +0.5 from 5.5.
    pub fn variant_c() -> Self {
        Self::from_table(&[(Some(5.0), 1.0), (None, 0.5)])
    }

    fn from_table(t: &[(Option<f64>, f64)]) -> Self {
        Self { steps: t.iter().map(|&(baseline_up_to, by)| ChangeStep { baseline_up_to, by }).collect() }
    }

    pub fn steps(&self) -> &[ChangeStep] {
        &self.steps
    }

    /// The change from `baseline` that counts.
    pub fn required(&self, baseline: Edss) -> f64 {
        let b = baseline.value();
        self.steps.iter().find(|s| s.baseline_up_to.is_none_or(|up| b <= up)).map_or(0.5, |s| s.by)
    }

    /// True when `score` is worse than `baseline` by at least the required change.
    pub fn is_worse(&self, baseline: Edss, score: Edss) -> bool {
        score.value() - baseline.value() >= self.required(baseline)
    }

    /// True when `score` is better than `baseline` by at least the required change.
    pub fn is_better(&self, baseline: Edss, score: Edss) -> bool {
        baseline.value() - score.value() >= self.required(baseline)
    }
}

impl Default for MinimumChange {
    fn default() -> Self {
        Self::variant_a()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(v: f64) -> Edss {
        Edss::parse(v).unwrap()
    }

    #[test]
    fn baseline_5_5_differs_between_the_published_variants() {
        assert_eq!(MinimumChange::variant_a().required(e(5.5)), 0.5);
        assert_eq!(MinimumChange::variant_b().required(e(5.5)), 1.0);
        assert_eq!(MinimumChange::variant_c().required(e(5.5)), 0.5);
    }

    #[test]
    fn variant_a_table() {
        let a = MinimumChange::variant_a();
        assert_eq!(a.required(e(0.0)), 1.5);
        assert_eq!(a.required(e(1.0)), 1.0);
        assert_eq!(a.required(e(5.0)), 1.0);
        assert_eq!(a.required(e(6.0)), 0.5);
        assert!(a.is_worse(e(4.5), e(5.5)));
        assert!(!a.is_worse(e(4.5), e(5.0)));
        assert!(a.is_worse(e(0.0), e(1.5)));
        assert!(!a.is_worse(e(0.0), e(1.0)));
        assert!(a.is_better(e(6.0), e(5.5)));
        assert_eq!(MinimumChange::variant_c().required(e(0.0)), 1.0);
    }

    #[test]
    fn malformed_tables_are_refused() {
        let s = |b: Option<f64>, by: f64| ChangeStep { baseline_up_to: b, by };
        assert!(MinimumChange::new(vec![]).is_err());
        assert!(MinimumChange::new(vec![s(Some(5.0), 1.0)]).is_err());
        assert!(MinimumChange::new(vec![s(None, 1.0), s(None, 0.5)]).is_err());
        assert!(MinimumChange::new(vec![s(Some(5.0), 1.0), s(Some(4.0), 1.0), s(None, 0.5)]).is_err());
        assert!(MinimumChange::new(vec![s(Some(5.0), 0.3), s(None, 0.5)]).is_err());
        assert!(MinimumChange::new(vec![s(Some(5.0), 1.0), s(None, 0.5)]).is_ok());
    }
}

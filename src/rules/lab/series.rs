//! A subject's results of one lab test, in time order: the baseline, where
//! post-baseline results start, and the evidence and wording of one sample.

use crate::model::{ClinicalTime, Lab, LabTest, LabUnit, SubjectHistory};
use crate::rules::{study_day, study_day_text};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One result with the time and visit the history gives it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample<'h> {
    pub(super) time: Option<&'h ClinicalTime>,
    pub(super) visit: Option<&'h str>,
    pub(super) lab: &'h Lab,
}

/// The results of one test name for one subject, earliest first (untimed last), with its
/// baseline and where treatment-emergent results start. Baselines are per test name: a
/// rule listing ALT and AST must not compare an AST with the ALT baseline.
pub(super) struct Series<'h> {
    pub(super) samples: Vec<Sample<'h>>,
    /// The last result on or before the first dose, else the first result.
    baseline: Option<usize>,
    /// Results from this index on (and timed) are post-baseline: after the first dose, or,
    /// with no dose recorded, after the first result's draw.
    first_post: usize,
    /// Results before this index have a time.
    timed: usize,
}

impl<'h> Series<'h> {
    /// One series per test the `wanted` test names, under whichever name the results use.
    pub(super) fn of(h: &'h SubjectHistory, wanted: impl Fn(&LabTest) -> bool) -> Vec<Series<'h>> {
        let mut by_name: BTreeMap<LabTest, Vec<Sample<'h>>> = BTreeMap::new();
        for (time, visit, lab) in h.labs() {
            let test = LabTest::parse(&lab.test);
            if wanted(&test) {
                by_name.entry(test).or_default().push(Sample { time, visit, lab });
            }
        }
        // The first dose's latest plausible instant: a result that day without a time is a
        // pre-dose result, as CDISC baselines compare dates.
        let dose = h.first_dose().map(|d| d.start.latest());
        by_name
            .into_values()
            .map(|samples| {
                let timed = samples.iter().take_while(|s| s.time.is_some()).count();
                let first_post = match (dose, samples.first().and_then(|s| s.time)) {
                    (Some(d), _) => samples[..timed]
                        .iter()
                        .take_while(|s| s.time.is_some_and(|t| t.earliest() <= d))
                        .count(),
                    (None, Some(t0)) => samples[..timed]
                        .iter()
                        .take_while(|s| s.time.is_some_and(|t| same_time(t, t0)))
                        .count(),
                    (None, None) => timed,
                };
                let baseline =
                    (timed > 0).then(|| if dose.is_some() { first_post.saturating_sub(1) } else { 0 });
                Series { samples, baseline, first_post, timed }
            })
            .collect()
    }

    pub(super) fn baseline(&self) -> Option<&Sample<'h>> {
        self.baseline.and_then(|b| self.samples.get(b))
    }

    /// Timed and after the first dose (or the first draw), and not the baseline itself
    /// (which it is when no result precedes the dose).
    pub(super) fn is_post_baseline(&self, i: usize) -> bool {
        i >= self.first_post && i < self.timed && self.baseline != Some(i)
    }

    /// The baseline to compare result `i` with: only post-baseline results have one.
    pub(super) fn baseline_for(&self, i: usize) -> Option<&Sample<'h>> {
        self.baseline().filter(|_| self.is_post_baseline(i))
    }

    /// Post-baseline results; with a dose recorded, every timed result after it counts,
    /// even when no result preceded the dose.
    pub(super) fn post_dose(&self) -> impl Iterator<Item = &Sample<'h>> {
        self.samples[self.first_post.min(self.timed)..self.timed].iter()
    }
}

pub(super) fn same_time(a: &ClinicalTime, b: &ClinicalTime) -> bool {
    a.earliest() == b.earliest() && a.latest() == b.latest()
}

/// The sample's ULN, when it has a usable one.
pub(super) fn uln(lab: &Lab) -> Option<f64> {
    lab.high.filter(|h| *h > 0.0 && h.is_finite())
}

/// Units agree, or one of them is not given (then the results are taken as comparable).
pub(super) fn same_unit(a: &Lab, b: &Lab) -> bool {
    match (&a.unit, &b.unit) {
        (Some(x), Some(y)) => LabUnit::parse(x) == LabUnit::parse(y),
        _ => true,
    }
}

/// A sample for the evidence: values, limits, visit and study day (no calendar date).
pub(super) fn sample_json(h: &SubjectHistory, s: &Sample) -> Value {
    json!({
        "test": s.lab.test,
        "value": s.lab.value,
        "unit": s.lab.unit,
        "low": s.lab.low,
        "high": s.lab.high,
        "ratio_to_uln": uln(s.lab).map(|u| round3(s.lab.value / u)),
        "visit": s.visit,
        "study_day": s.time.and_then(|t| study_day(h, t)),
        "partial_date": s.time.map(|t| t.is_partial()),
    })
}

/// "visit W4, study day 29", from the sample's time and visit label (never a date).
pub(super) fn when(h: &SubjectHistory, s: &Sample) -> String {
    let day = match s.time {
        Some(t) if t.is_partial() => format!("{} (partial date)", study_day_text(h, t)),
        Some(t) => study_day_text(h, t),
        None => "an unrecorded time".to_string(),
    };
    match s.visit {
        Some(v) => format!("visit {v}, {day}"),
        None => day,
    }
}

pub(super) fn value_text(lab: &Lab) -> String {
    match &lab.unit {
        Some(u) => format!("{} {u}", num(lab.value)),
        None => num(lab.value),
    }
}

/// A number as a reader writes it: up to 4 decimals, no trailing zeros.
pub(super) fn num(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    s.to_string()
}

pub(super) fn ratio_text(r: f64) -> String {
    format!("{r:.2}")
}

pub(super) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

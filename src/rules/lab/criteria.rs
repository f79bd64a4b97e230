//! The plain criteria of a lab rule: an absolute limit, a multiple of the sample's ULN or
//! of the subject's baseline; and the decimal comparisons every lab criterion uses.

use super::series::{num, ratio_text, round3, same_unit, uln, Sample};
use crate::model::Lab;
use serde::Deserialize;
use serde_json::{json, Value};

/// A multiple of a reference value (ULN or baseline).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Multiple {
    /// The multiple k: fires when value ≥ k × reference.
    pub at_least: f64,
    /// Fire only when value > k × reference (the "> 3×ULN" of many protocols); default false.
    #[serde(default)]
    pub strictly_above: bool,
}

/// Why one sample fired, before it becomes a finding.
pub(super) struct Judged {
    pub(super) level: i64,
    /// "3.25×ULN", "CTCAE grade 2 alanine aminotransferase increased", …
    pub(super) what: String,
    pub(super) why: String,
    pub(super) extra: Value,
}

pub(super) fn absolute(lab: &Lab, above: Option<f64>, below: Option<f64>, inclusive: bool) -> Option<Judged> {
    let v = lab.value;
    let (op_hi, op_lo) = if inclusive { (">=", "<=") } else { (">", "<") };
    let hit = |what: &str, op: &str, limit: f64| Judged {
        level: 1,
        what: format!("{what} {}", num(limit)),
        why: format!("{} {op} {}", num(v), num(limit)),
        extra: json!({"threshold": {"limit": limit, "direction": what, "inclusive": inclusive}}),
    };
    if let Some(a) = above.filter(|a| reaches(v, 1.0, *a, inclusive)) {
        return Some(hit("above", op_hi, a));
    }
    below.filter(|b| reaches_below(v, *b, inclusive)).map(|b| hit("below", op_lo, b))
}

pub(super) fn times_uln(lab: &Lab, m: &Multiple) -> Option<Judged> {
    let uln = uln(lab)?;
    if !reaches(lab.value, m.at_least, uln, !m.strictly_above) {
        return None;
    }
    let op = if m.strictly_above { ">" } else { ">=" };
    Some(Judged {
        level: 1,
        what: format!("{}×ULN", ratio_text(lab.value / uln)),
        why: format!("{} {op} {}×ULN ({})", num(lab.value), num(m.at_least), num(m.at_least * uln)),
        extra: json!({"threshold": {"times_uln": m.at_least, "strictly_above": m.strictly_above}}),
    })
}

pub(super) fn times_baseline(lab: &Lab, base: &Sample, m: &Multiple) -> Option<Judged> {
    let b = base.lab.value;
    if b <= 0.0 || !same_unit(lab, base.lab) || !reaches(lab.value, m.at_least, b, !m.strictly_above) {
        return None;
    }
    let op = if m.strictly_above { ">" } else { ">=" };
    Some(Judged {
        level: 1,
        what: format!("{}×baseline", ratio_text(lab.value / b)),
        why: format!("{} {op} {}×baseline ({})", num(lab.value), num(m.at_least), num(m.at_least * b)),
        extra: json!({
            "ratio_to_baseline": round3(lab.value / b),
            "threshold": {"times_baseline": m.at_least, "strictly_above": m.strictly_above},
        }),
    })
}

/// Rounds to 12 significant digits, so that a value and k × a limit compare as the decimal
/// numbers they are (0.1 × 3 is 0.30000000000000004 in binary); admiral does the same
/// with `signif`.
pub(super) fn signif(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let digits = 11 - x.abs().log10().floor() as i32;
    if !(-300..=300).contains(&digits) {
        return x;
    }
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// value ≥ k × reference (inclusive) or value > k × reference.
pub(super) fn reaches(value: f64, k: f64, reference: f64, inclusive: bool) -> bool {
    let (v, limit) = (signif(value), signif(k * reference));
    if inclusive {
        v >= limit
    } else {
        v > limit
    }
}

/// value ≤ limit (inclusive) or value < limit.
pub(super) fn reaches_below(value: f64, limit: f64, inclusive: bool) -> bool {
    let (v, l) = (signif(value), signif(limit));
    if inclusive {
        v <= l
    } else {
        v < l
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::lab::tests::{alt, one, rule, visit, DOSE};

    #[test]
    fn decimals_compare_as_written() {
        assert_eq!(signif(0.1 * 3.0), 0.3);
        assert!(reaches(0.3, 3.0, 0.1, true) && !reaches(0.3, 3.0, 0.1, false));
        assert!(reaches(0.7, 7.0, 0.1, true));
        assert!(reaches_below(3.5, 3.5, true) && !reaches_below(3.5, 3.5, false));
        assert_eq!(signif(0.0), 0.0);
        assert!(signif(f64::NAN).is_nan());
    }

    #[test]
    fn alt_at_exactly_3x_uln_fires_with_at_least_not_with_strictly_above() {
        let data = [DOSE.to_string(), visit("W2", "2019-03-12", &[&alt(120.0, 40.0)])];
        let f = one(&rule("test: [alt, sgpt]\ntimes_uln: {at_least: 3}"), &data);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].episode.as_str(), f[0].level), ("lab:ALT@2019-03-12", 1));
        assert_eq!(f[0].summary, "ALT 120 U/L at visit W2, study day 15: 3.00×ULN.");
        assert_eq!(f[0].why, "120 >= 3×ULN (120)");
        assert_eq!(f[0].evidence["sample"]["ratio_to_uln"], 3.0);
        assert!(one(&rule("test: ALT\ntimes_uln: {at_least: 3, strictly_above: true}"), &data).is_empty());
        let above = [visit("W2", "2019-03-12", &[&alt(120.1, 40.0)])];
        assert_eq!(one(&rule("test: ALT\ntimes_uln: {at_least: 3, strictly_above: true}"), &above).len(), 1);
    }

    #[test]
    fn multiples_compare_as_decimals() {
        // 0.1 × 3 is 0.30000000000000004 in binary; 0.3 is still exactly 3×ULN.
        let data = [visit("W2", "2019-03-12", &[r#"{"test":"X","value":0.3,"high":0.1}"#])];
        assert_eq!(one(&rule("test: X\ntimes_uln: {at_least: 3}"), &data).len(), 1);
        assert!(one(&rule("test: X\ntimes_uln: {at_least: 3, strictly_above: true}"), &data).is_empty());
        // 0.7 / 0.1 is 6.999999999999999 in binary.
        let data = [visit("W2", "2019-03-12", &[r#"{"test":"X","value":0.7,"high":0.1}"#])];
        assert_eq!(one(&rule("test: X\ntimes_uln: {at_least: 7}"), &data).len(), 1);
    }

    #[test]
    fn a_result_without_uln_is_not_judged_against_uln() {
        let data = [visit("W2", "2019-03-12", &[r#"{"test":"ALT","value":900}"#])];
        assert!(one(&rule("test: ALT\ntimes_uln: {at_least: 3}"), &data).is_empty());
        assert!(one(&rule("test: ALT\nctcae: {at_least: 1}"), &data).is_empty());
        assert!(one(&rule("hys_law: {}"), &data).is_empty());
        let zero = [visit("W2", "2019-03-12", &[r#"{"test":"ALT","value":900,"high":0}"#])];
        assert!(one(&rule("test: ALT\ntimes_uln: {at_least: 3}"), &zero).is_empty());
    }

    #[test]
    fn absolute_limits_inclusive_by_default() {
        let data = [visit("W2", "2019-03-12", &[r#"{"test":"K","value":3.5,"unit":"mmol/L"}"#])];
        let f = one(&rule("test: K\nbelow: 3.5\nabove: 6"), &data);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].why, "3.5 <= 3.5");
        assert!(f[0].summary.contains("K 3.5 mmol/L") && f[0].summary.contains("below 3.5"));
        assert!(one(&rule("test: K\nbelow: 3.5\ninclusive: false"), &data).is_empty());
        let high = [visit("W2", "2019-03-12", &[r#"{"test":"k","value":6,"unit":"mmol/L"}"#])];
        assert_eq!(one(&rule("test: K\nabove: 6"), &high).len(), 1);
        assert!(one(&rule("test: K\nabove: 6\ninclusive: false"), &high).is_empty());
    }

    #[test]
    fn times_baseline_uses_the_last_pre_dose_result() {
        let r = rule("test: ALT\ntimes_baseline: {at_least: 2}");
        let data = [
            visit("SCR", "2019-02-01", &[&alt(10.0, 40.0)]),
            visit("BL", "2019-02-26", &[&alt(20.0, 40.0)]),
            DOSE.to_string(),
            visit("W2", "2019-03-12", &[&alt(40.0, 40.0)]),
            visit("W4", "2019-03-26", &[&alt(39.0, 40.0)]),
        ];
        let f = one(&r, &data);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].summary, "ALT 40 U/L at visit W2, study day 15: 2.00×baseline.");
        assert_eq!(f[0].evidence["baseline"]["visit"], "BL");
        assert!(
            one(&rule("test: ALT\ntimes_baseline: {at_least: 2, strictly_above: true}"), &data).is_empty()
        );
        // Without a dose the first result is the baseline and is not judged against itself.
        let f = one(&r, &data[..1].iter().chain(&data[3..]).cloned().collect::<Vec<_>>());
        assert_eq!(f.len(), 2);
    }
}

//! Potential Hy's law (FDA ST&F IG 2025; docs/clinical-reference.md §6.1): a post-baseline ALT or AST
//! ≥ 3×ULN with a total bilirubin ≥ 2×ULN within 30 days after, optionally without initial
//! cholestasis (ALP). The tests are recognised by `LabTest`, under any of their names.

use super::criteria::reaches;
use super::series::{num, ratio_text, same_time, sample_json, uln, value_text, when, Sample, Series};
use crate::model::{LabTest, SubjectHistory};
use crate::rules::{study_day, Context, Finding, Span};
use serde::Deserialize;
use serde_json::json;

/// Potential Hy's law: a post-baseline total bilirubin ≥ 2×ULN within 30 days after (or on
/// the same draw as) a post-baseline ALT or AST ≥ 3×ULN (FDA ST&F IG 2025). Post-baseline
/// = after the first dose; with no dose recorded, after each test's first draw. Results
/// without a time or without a ULN cannot be placed or judged and are left out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HysLaw {
    /// ALT or AST multiple of ULN (default 3).
    #[serde(default = "default_alt_ast_uln")]
    pub alt_ast_uln: f64,
    /// Total bilirubin multiple of ULN (default 2).
    #[serde(default = "default_bilirubin_uln")]
    pub bilirubin_uln: f64,
    /// Days from the ALT/AST draw to the bilirubin draw, by calendar day, 0 = same day
    /// (default 30).
    #[serde(default = "default_within_days", deserialize_with = "crate::rules::duration::whole_days")]
    pub within_days: Span,
    /// true (default) = ≥ for both tests, as in the ST&F IG; false = > for both.
    #[serde(default = "default_inclusive")]
    pub inclusive: bool,
    /// Adds "no initial cholestasis": ALP on the ALT/AST draw must be below this multiple
    /// of ULN (FDA 2009: 2). Default: no ALP condition. A draw without ALP still counts.
    pub alp_below_uln: Option<f64>,
}

const fn default_alt_ast_uln() -> f64 {
    3.0
}
const fn default_bilirubin_uln() -> f64 {
    2.0
}
const fn default_within_days() -> Span {
    Span::from_days(30)
}
const fn default_inclusive() -> bool {
    true
}

/// One qualifying pair of a Hy's law case.
struct HyPair<'a> {
    transaminase: &'a Sample<'a>,
    bilirubin: &'a Sample<'a>,
    days_after: i64,
    alp: Option<&'a Sample<'a>>,
}

/// The subject's potential Hy's law case, if any: one finding, the first qualifying pair
/// in its summary and every pair in its evidence.
pub(super) fn hys_law(hy: &HysLaw, h: &SubjectHistory, ctx: &Context) -> Option<Finding> {
    let at_series = Series::of(h, LabTest::is_transaminase);
    let tb_series = Series::of(h, |t| *t == LabTest::Bilirubin);
    let alp_series = Series::of(h, |t| *t == LabTest::Alp);
    let meets = |s: &Sample, k: f64| uln(s.lab).is_some_and(|u| reaches(s.lab.value, k, u, hy.inclusive));
    let mut ats: Vec<&Sample> =
        at_series.iter().flat_map(|s| s.post_dose()).filter(|s| meets(s, hy.alt_ast_uln)).collect();
    let mut tbs: Vec<&Sample> =
        tb_series.iter().flat_map(|s| s.post_dose()).filter(|s| meets(s, hy.bilirubin_uln)).collect();
    ats.sort_by_key(|s| s.time.map(|t| t.earliest()));
    tbs.sort_by_key(|s| s.time.map(|t| t.earliest()));
    let alps: Vec<&Sample> = alp_series.iter().flat_map(|s| s.samples.iter()).collect();

    let mut pairs = Vec::new();
    for a in &ats {
        let Some(ta) = a.time else { continue };
        // ALP on the ALT/AST draw: "initial" cholestasis. Unknown ALP does not clear a case.
        let alp = alps.iter().copied().find(|p| p.time.is_some_and(|tp| same_time(tp, ta)));
        if let Some(k) = hy.alp_below_uln {
            if alp.is_some_and(|p| uln(p.lab).is_some_and(|u| reaches(p.lab.value, k, u, true))) {
                continue;
            }
        }
        for b in &tbs {
            let Some(tb) = b.time else { continue };
            // Calendar days from the ALT/AST draw to the bilirubin draw; a partial date
            // counts when any of its days could be inside the window.
            let min_gap = (tb.day() - ta.last_day()).num_days();
            let max_gap = (tb.last_day() - ta.day()).num_days();
            if max_gap >= 0 && min_gap <= hy.within_days.days() {
                pairs.push(HyPair { transaminase: a, bilirubin: b, days_after: tb.days_since(ta), alp });
            }
        }
    }
    let first = pairs.first()?;
    let op = if hy.inclusive { ">=" } else { ">" };
    let ratio = |s: &Sample| uln(s.lab).map(|u| s.lab.value / u);
    let sample = |s: &Sample| sample_json(h, s);
    let mut at_list: Vec<&Sample> = Vec::new();
    let mut tb_list: Vec<&Sample> = Vec::new();
    for p in &pairs {
        if !at_list.iter().any(|s| std::ptr::eq(*s, p.transaminase)) {
            at_list.push(p.transaminase);
        }
        if !tb_list.iter().any(|s| std::ptr::eq(*s, p.bilirubin)) {
            tb_list.push(p.bilirubin);
        }
    }
    let gap = match first.days_after {
        0 if first.transaminase.time.zip(first.bilirubin.time).is_some_and(|(a, b)| same_time(a, b)) => {
            "on the same draw".to_string()
        }
        0 => "the same day".to_string(),
        1 => "1 day later".to_string(),
        n => format!("{n} days later"),
    };
    let at_text = |s: &Sample| {
        format!(
            "{} {} ({}×ULN) at {}",
            s.lab.test.trim(),
            value_text(s.lab),
            ratio(s).map_or_else(|| "?".into(), ratio_text),
            when(h, s)
        )
    };
    let more =
        if pairs.len() > 1 { format!(" ({} qualifying pairs in all)", pairs.len()) } else { String::new() };
    let mut why = format!(
        "post-baseline ALT/AST {op} {}×ULN and total bilirubin {op} {}×ULN within {} days after (FDA ST&F IG)",
        num(hy.alt_ast_uln),
        num(hy.bilirubin_uln),
        hy.within_days.days()
    );
    if let Some(k) = hy.alp_below_uln {
        why.push_str(&format!("; ALP < {}×ULN on the ALT/AST draw", num(k)));
        if first.alp.is_none() {
            why.push_str(" (ALP not measured on that draw: cholestasis not excluded)");
        }
    }
    Some(Finding {
        episode: "hys-law".into(),
        clinical_time: first.bilirubin.time.or(first.transaminase.time).map(crate::model::ClinicalTime::earliest),
        level: 1,
        severity: ctx.severity,
        title: None,
        summary: format!(
            "Potential Hy's law case: {}, with total bilirubin {} ({}×ULN) {gap}{more}.",
            at_text(first.transaminase),
            value_text(first.bilirubin.lab),
            ratio(first.bilirubin).map_or_else(|| "?".into(), ratio_text),
        ),
        why,
        evidence: json!({
            "alt_ast": at_list.iter().map(|s| sample(s)).collect::<Vec<_>>(),
            "bilirubin": tb_list.iter().map(|s| sample(s)).collect::<Vec<_>>(),
            "pairs": pairs.iter().map(|p| json!({
                "alt_ast": {"test": p.transaminase.lab.test, "study_day": p.transaminase.time.and_then(|t| study_day(h, t))},
                "bilirubin": {"test": p.bilirubin.lab.test, "study_day": p.bilirubin.time.and_then(|t| study_day(h, t))},
                "days_after": p.days_after,
                "alp": p.alp.map(&sample),
            })).collect::<Vec<_>>(),
            "threshold": {"alt_ast_uln": hy.alt_ast_uln, "bilirubin_uln": hy.bilirubin_uln,
                          "within_days": hy.within_days.days(), "inclusive": hy.inclusive,
                          "alp_below_uln": hy.alp_below_uln},
        }),
    })
}

#[cfg(test)]
mod tests {
    use crate::rules::lab::tests::{alt, liver, liver_history, one, rule, visit, DOSE};

    #[test]
    fn hys_law_at_exactly_3x_and_2x_fires_with_inclusive_not_with_exclusive() {
        let data = liver_history(&[liver("2019-03-12", 120.0, 40.0)]);
        let f = one(&rule("hys_law: {}"), &data);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].episode.as_str(), f[0].level), ("hys-law", 1));
        assert_eq!(
            f[0].summary,
            "Potential Hy's law case: ALT 120 U/L (3.00×ULN) at visit UNS, study day 15, \
             with total bilirubin 40 umol/L (2.00×ULN) on the same draw."
        );
        assert_eq!(f[0].evidence["alt_ast"][0]["ratio_to_uln"], 3.0);
        assert_eq!(f[0].evidence["bilirubin"][0]["ratio_to_uln"], 2.0);
        assert_eq!(f[0].evidence["bilirubin"][0]["study_day"], 15);
        assert!(one(&rule("hys_law: {inclusive: false}"), &data).is_empty());
        let over = liver_history(&[liver("2019-03-12", 120.1, 40.1)]);
        assert_eq!(one(&rule("hys_law: {inclusive: false}"), &over).len(), 1);
        // Re-evaluating the same data gives the same finding.
        assert_eq!(one(&rule("hys_law: {}"), &data), f);
    }

    #[test]
    fn hys_law_window_is_0_to_30_days_after_the_transaminase() {
        let at = liver("2019-03-12", 130.0, 10.0);
        let tb = |d: &str| liver(d, 20.0, 50.0);
        let f = one(&rule("hys_law: {}"), &liver_history(&[at.clone(), tb("2019-04-11")]));
        assert_eq!(f.len(), 1, "30 days after");
        assert!(f[0].summary.contains("30 days later"), "{}", f[0].summary);
        assert!(
            one(&rule("hys_law: {}"), &liver_history(&[at.clone(), tb("2019-04-12")])).is_empty(),
            "31 days"
        );
        assert_eq!(
            one(&rule("hys_law: {within_days: 31}"), &liver_history(&[at.clone(), tb("2019-04-12")])).len(),
            1
        );
        assert!(
            one(&rule("hys_law: {}"), &liver_history(&[tb("2019-03-05"), at])).is_empty(),
            "bilirubin before"
        );
    }

    #[test]
    fn hys_law_ignores_baseline_results() {
        // Liver injury before the first dose is not a potential Hy's law case.
        let data = [liver("2019-02-20", 200.0, 60.0), DOSE.to_string(), liver("2019-03-12", 20.0, 10.0)];
        assert!(one(&rule("hys_law: {}"), &data).is_empty());
        // A pre-dose transaminase with a post-dose bilirubin is not one either.
        let data = [liver("2019-02-26", 200.0, 10.0), DOSE.to_string(), liver("2019-03-12", 20.0, 60.0)];
        assert!(one(&rule("hys_law: {}"), &data).is_empty());
    }

    #[test]
    fn hys_law_alp_condition_excludes_initial_cholestasis() {
        let with_alp = |alp: f64| {
            liver_history(&[visit(
                "W2",
                "2019-03-12",
                &[
                    &alt(150.0, 40.0),
                    r#"{"test":"BILI","value":50,"high":20}"#,
                    &format!(r#"{{"test":"ALKPH","value":{alp},"high":100}}"#),
                ],
            )])
        };
        let r = rule("hys_law: {alp_below_uln: 2}");
        assert!(one(&r, &with_alp(200.0)).is_empty(), "ALP exactly 2×ULN is cholestasis");
        let f = one(&r, &with_alp(199.0));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].evidence["pairs"][0]["alp"]["ratio_to_uln"], 1.99);
        assert_eq!(one(&rule("hys_law: {}"), &with_alp(500.0)).len(), 1, "no ALP condition by default");
        // ALP not measured: cholestasis cannot be excluded, so the case stands, with a note.
        let f = one(&r, &liver_history(&[liver("2019-03-12", 150.0, 50.0)]));
        assert_eq!(f.len(), 1);
        assert!(f[0].why.contains("ALP not measured"), "{}", f[0].why);
    }

    #[test]
    fn hys_law_reads_bilirubin_and_transaminases_under_any_name() {
        let named = |t: &str, b: &str| {
            liver_history(&[visit(
                "W2",
                "2019-03-12",
                &[
                    &format!(r#"{{"test":"{t}","value":150,"high":40}}"#),
                    &format!(r#"{{"test":"{b}","value":50,"high":20}}"#),
                ],
            )])
        };
        for (t, b) in
            [("SGPT", "Bilirubin"), ("Alanine Aminotransferase", "Total bilirubin"), ("sgot", "tbili")]
        {
            assert_eq!(one(&rule("hys_law: {}"), &named(t, b)).len(), 1, "{t} and {b}");
        }
        assert!(one(&rule("hys_law: {}"), &named("ALP", "BILI")).is_empty(), "ALP is not a transaminase");
    }
}

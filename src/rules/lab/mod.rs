//! `lab`: one laboratory test against an absolute limit, a multiple of the sample's upper
//! limit of normal (ULN) or of the subject's baseline, or a CTCAE v5 grade (docs/clinical-reference.md
//! §6.2); or the liver panel against Hy's law (docs/clinical-reference.md §6.1).
//!
//! Episode = the sample (`lab:ALT@<time>`), level = its CTCAE grade (1 for a plain
//! threshold), so re-evaluating the same data raises nothing and a corrected, worse value
//! raises again. Hy's law is one episode per subject (`hys-law`, level 1).
//!
//! Every ×ULN comparison uses that sample's own ULN, and every comparison is made on the
//! decimal values (12 significant digits), so "exactly 3×ULN" is exactly 3×ULN.
//!
//! Tests are recognised by `LabTest`: `test: ALT` reads results named ALT, SGPT or
//! "Alanine Aminotransferase". This file holds the rule and its parameters; `criteria`,
//! `ctcae` and `hys_law` judge, `series` orders a subject's results.

mod criteria;
mod ctcae;
mod hys_law;
mod series;

pub use criteria::Multiple;
pub use ctcae::{CtcaeCriterion, CtcaeGrading, CtcaeTerm};
pub use hys_law::HysLaw;

use super::{Context, Finding, Kind};
use crate::model::{LabTest, LabUnit, SubjectHistory};
use criteria::{absolute, times_baseline, times_uln, Judged};
use serde::{de, Deserialize, Deserializer};
use serde_json::{json, Value};
use series::{num, sample_json, value_text, when, Sample, Series};
use std::fmt;

/// The rule as written in the rule file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabParams {
    /// The test: one name or a list of names (`[ALT, AST]`). A result counts when its `test`
    /// is the same `LabTest` (any synonym; case, spaces and punctuation ignored). Required,
    /// except with `hys_law`, which names its own tests.
    #[serde(default, deserialize_with = "one_or_many")]
    pub test: Vec<String>,
    /// Fires when a value reaches this limit, in the result's own unit.
    pub above: Option<f64>,
    /// Fires when a value reaches this limit from above (with `above`: outside the range).
    pub below: Option<f64>,
    /// Whether `above`/`below` include the limit: true (default) = ≥ / ≤, false = > / <.
    pub inclusive: Option<bool>,
    /// value / that sample's ULN (`high`) reaches a multiple. No ULN = not judged.
    pub times_uln: Option<Multiple>,
    /// value / baseline reaches a multiple, for results after the baseline. Baseline = the
    /// last result of the same test on or before the first dose, else the first result.
    pub times_baseline: Option<Multiple>,
    /// The CTCAE v5 grade (docs/clinical-reference.md §6.2) reaches a minimum.
    pub ctcae: Option<CtcaeCriterion>,
    /// Potential Hy's law case (use without `test`).
    pub hys_law: Option<HysLaw>,
}

/// `test: ALT` or `test: [ALT, SGPT]`, with an error that says so (serde's untagged enums
/// only say "did not match any variant").
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Names;
    impl<'de> de::Visitor<'de> for Names {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a test name or a list of test names")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(name) = seq.next_element::<String>()? {
                out.push(name);
            }
            Ok(out)
        }
    }
    d.deserialize_any(Names)
}

/// The rule ready to run: its tests parsed and its one criterion resolved, at load.
#[derive(Debug, Clone)]
pub struct LabRule {
    /// The tests read (empty for Hy's law, which names its own).
    pub tests: Vec<LabTest>,
    pub criterion: Criterion,
}

/// The one criterion of a lab rule.
#[derive(Debug, Clone)]
pub enum Criterion {
    Absolute { above: Option<f64>, below: Option<f64>, inclusive: bool },
    TimesUln(Multiple),
    TimesBaseline(Multiple),
    Ctcae(CtcaeGrading),
    HysLaw(HysLaw),
}

impl Kind for LabRule {
    const NAME: &'static str = "lab";
    type Params = LabParams;

    fn check(p: LabParams) -> Result<Self, (String, String)> {
        let blocks: Vec<&str> = [
            ("above/below", p.above.is_some() || p.below.is_some()),
            ("times_uln", p.times_uln.is_some()),
            ("times_baseline", p.times_baseline.is_some()),
            ("ctcae", p.ctcae.is_some()),
            ("hys_law", p.hys_law.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| name)
        .collect();
        match blocks.as_slice() {
            [] => {
                return Err((
                    String::new(),
                    "give one criterion: above/below, times_uln, times_baseline, ctcae or hys_law".into(),
                ))
            }
            [_] => {}
            // "above/below" is listed first, so the second block is always a key of its own.
            [_, second, ..] => {
                return Err((
                    (*second).into(),
                    format!("one criterion per rule, not {}", blocks.join(" and ")),
                ));
            }
        }
        if p.hys_law.is_some() {
            if !p.test.is_empty() {
                return Err((
                    "test".into(),
                    "hys_law reads its own tests (ALT/SGPT/AST/SGOT, BILI/TBILI, ALP/ALKPH); remove `test`"
                        .into(),
                ));
            }
        } else if p.test.is_empty() {
            return Err(("test".into(), "missing: the test name or its aliases, e.g. [ALT, SGPT]".into()));
        }
        if p.test.iter().any(|t| t.trim().is_empty()) {
            return Err(("test".into(), "an empty test name matches nothing".into()));
        }
        for (key, v) in [("above", p.above), ("below", p.below)] {
            if v.is_some_and(|v| !v.is_finite()) {
                return Err((key.into(), "must be a number".into()));
            }
        }
        if let (Some(a), Some(b)) = (p.above, p.below) {
            if b >= a {
                return Err((
                    "below".into(),
                    format!("below: {b} is not under above: {a}; every value would fire"),
                ));
            }
        }
        if p.inclusive.is_some() && p.above.is_none() && p.below.is_none() {
            return Err((
                "inclusive".into(),
                "applies to above/below only (times_uln/times_baseline use strictly_above)".into(),
            ));
        }
        if let Some(m) = &p.times_uln {
            if !(m.at_least > 0.0 && m.at_least.is_finite()) {
                return Err(("times_uln.at_least".into(), "must be a positive multiple".into()));
            }
        }
        if let Some(m) = &p.times_baseline {
            if !(m.at_least > 1.0 && m.at_least.is_finite()) {
                return Err((
                    "times_baseline.at_least".into(),
                    "must be above 1: an unchanged value would fire otherwise".into(),
                ));
            }
        }
        if let Some(c) = &p.ctcae {
            let term = ctcae_term(&p, c)?;
            if !(1..=term.max_grade()).contains(&c.at_least) {
                return Err((
                    "ctcae.at_least".into(),
                    format!(
                        "{} is graded 1 to {} from lab values, not {}",
                        term.label(),
                        term.max_grade(),
                        c.at_least
                    ),
                ));
            }
            if let Some(u) = &c.assume_unit {
                if !term.absolute() {
                    return Err((
                        "ctcae.assume_unit".into(),
                        format!(
                            "{} is graded on multiples of ULN or baseline; units do not matter",
                            term.label()
                        ),
                    ));
                }
                if term.unit_scale(&LabUnit::parse(u)).is_none() {
                    return Err((
                        "ctcae.assume_unit".into(),
                        format!("`{u}` is not a unit vigil converts for {} ({})", term.label(), term.units()),
                    ));
                }
            }
        }
        if let Some(hy) = &p.hys_law {
            for (key, v) in [
                ("hys_law.alt_ast_uln", Some(hy.alt_ast_uln)),
                ("hys_law.bilirubin_uln", Some(hy.bilirubin_uln)),
                ("hys_law.alp_below_uln", hy.alp_below_uln),
            ] {
                if v.is_some_and(|v| !(v > 0.0 && v.is_finite())) {
                    return Err((key.into(), "must be a positive multiple of ULN".into()));
                }
            }
        }
        let tests = p.test.iter().map(|t| LabTest::parse(t)).collect();
        // Exactly one block is set (checked above); the order only picks it.
        let criterion = if let Some(hy) = p.hys_law {
            Criterion::HysLaw(hy)
        } else if let Some(m) = p.times_uln {
            Criterion::TimesUln(m)
        } else if let Some(m) = p.times_baseline {
            Criterion::TimesBaseline(m)
        } else if let Some(c) = &p.ctcae {
            Criterion::Ctcae(CtcaeGrading {
                at_least: c.at_least,
                term: ctcae_term(&p, c)?,
                assume_unit: c.assume_unit.as_deref().map(LabUnit::parse),
            })
        } else {
            Criterion::Absolute { above: p.above, below: p.below, inclusive: p.inclusive.unwrap_or(true) }
        };
        Ok(Self { tests, criterion })
    }

    fn evaluate(&self, h: &SubjectHistory, ctx: &Context) -> Vec<Finding> {
        if let Criterion::HysLaw(hy) = &self.criterion {
            return hys_law::hys_law(hy, h, ctx).into_iter().collect();
        }
        let mut out = Vec::new();
        for series in Series::of(h, |t| self.tests.contains(t)) {
            for (i, s) in series.samples.iter().enumerate() {
                let judged = match &self.criterion {
                    Criterion::Absolute { above, below, inclusive } => {
                        absolute(s.lab, *above, *below, *inclusive)
                    }
                    Criterion::TimesUln(m) => times_uln(s.lab, m),
                    Criterion::TimesBaseline(m) => {
                        series.baseline_for(i).and_then(|b| times_baseline(s.lab, b, m))
                    }
                    // Change-from-baseline grades apply after the baseline; the baseline
                    // itself and earlier results are graded on ULN/LLN alone.
                    Criterion::Ctcae(c) => c
                        .term
                        .grade(s.lab, series.baseline_for(i).map(|b| b.lab), c.assume_unit.as_ref())
                        .filter(|g| g.level >= i64::from(c.at_least))
                        .map(|g| Judged {
                            why: format!("grade {} >= {}: {}", g.level, c.at_least, g.why),
                            ..g
                        }),
                    Criterion::HysLaw(_) => None,
                };
                if let Some(j) = judged {
                    out.push(finding(h, ctx, s, &series, j));
                }
            }
        }
        out
    }
}

/// The term named by `ctcae.term`, else by the test names (which must agree).
fn ctcae_term(p: &LabParams, c: &CtcaeCriterion) -> Result<CtcaeTerm, (String, String)> {
    if let Some(t) = c.term {
        return Ok(t);
    }
    let mut found: Option<CtcaeTerm> = None;
    for name in &p.test {
        match (found, CtcaeTerm::for_test(&LabTest::parse(name))) {
            (None, t) => found = t,
            (Some(a), Some(b)) if a != b => {
                return Err((
                    "test".into(),
                    format!("these tests name two CTCAE terms ({} and {})", a.label(), b.label()),
                ))
            }
            _ => {}
        }
    }
    found.ok_or_else(|| {
        (
            "ctcae.term".into(),
            format!(
                "no CTCAE term is known for test {}; name it with `term:` (one of: {})",
                p.test.join(", "),
                CtcaeTerm::ALL.iter().map(|t| t.key()).collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

fn finding(h: &SubjectHistory, ctx: &Context, s: &Sample, series: &Series, j: Judged) -> Finding {
    let time = s.time.map_or_else(|| format!("untimed={}", num(s.lab.value)), |t| t.raw().to_string());
    let mut evidence = json!({
        "sample": sample_json(h, s),
        "baseline": series.baseline().map(|b| sample_json(h, b)),
    });
    if let (Value::Object(e), Value::Object(x)) = (&mut evidence, j.extra) {
        e.extend(x);
    }
    Finding {
        episode: format!("lab:{}@{time}", s.lab.test.trim()),
        clinical_time: s.time.map(crate::model::ClinicalTime::earliest),
        level: j.level,
        severity: ctx.severity,
        title: None,
        summary: format!("{} {} at {}: {}.", s.lab.test.trim(), value_text(s.lab), when(h, s), j.what),
        why: j.why,
        evidence,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::model::{Record, SubjectId};
    use crate::rules::Severity;
    use std::collections::{BTreeMap, BTreeSet};

    pub(crate) fn ctx() -> Context<'static> {
        Context { severity: Severity::Warning, as_of: chrono::Utc::now(), schedule: &[] }
    }

    pub(crate) fn params(yaml: &str) -> LabParams {
        serde_yaml::from_str(yaml).unwrap()
    }

    pub(crate) fn rule(yaml: &str) -> LabRule {
        LabRule::check(params(yaml)).unwrap()
    }

    fn refused(yaml: &str) -> (String, String) {
        LabRule::check(params(yaml)).unwrap_err()
    }

    pub(crate) fn history(json: &[String]) -> SubjectHistory {
        SubjectHistory::new(
            SubjectId::parse("KS-101").unwrap(),
            json.iter().map(|j| Record::from_json(j).unwrap()).collect(),
        )
    }

    pub(crate) const DOSE: &str =
        r#"{"subject":"KS-101","visit":"D1","doses":[{"start":"2019-02-26T09:10:00+01:00"}]}"#;

    /// A visit record with labs (JSON objects without the braces' surroundings).
    pub(crate) fn visit(label: &str, date: &str, labs: &[&str]) -> String {
        format!(r#"{{"subject":"KS-101","visit":"{label}","date":"{date}","labs":[{}]}}"#, labs.join(","))
    }

    pub(crate) fn alt(value: f64, high: f64) -> String {
        format!(r#"{{"test":"ALT","value":{value},"unit":"U/L","high":{high}}}"#)
    }

    pub(crate) fn one(r: &LabRule, records: &[String]) -> Vec<Finding> {
        r.evaluate(&history(records), &ctx())
    }

    /// Liver tests drawn together at an unscheduled visit on `day`.
    pub(crate) fn liver(day: &str, alt: f64, bili: f64) -> String {
        visit(
            "UNS",
            day,
            &[
                &format!(r#"{{"test":"ALT","value":{alt},"unit":"U/L","high":40}}"#),
                r#"{"test":"AST","value":20,"unit":"U/L","high":40}"#,
                &format!(r#"{{"test":"TBILI","value":{bili},"unit":"umol/L","high":20}}"#),
            ],
        )
    }

    pub(crate) fn liver_history(extra: &[String]) -> Vec<String> {
        let mut v = vec![liver("2019-02-20", 20.0, 10.0), DOSE.to_string()];
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn yaml_shapes_and_refusals() {
        assert_eq!(params("test: ALT\ntimes_uln: {at_least: 3}").test, ["ALT"]);
        assert_eq!(params("test: [ALT, SGPT]\nabove: 120").test, ["ALT", "SGPT"]);
        assert_eq!(rule("test: [ALT, SGPT]\nabove: 120").tests, [LabTest::Alt, LabTest::Alt]);
        let Criterion::HysLaw(hy) = rule("hys_law: {}").criterion else { panic!("not hys_law") };
        assert_eq!(
            (hy.alt_ast_uln, hy.bilirubin_uln, hy.within_days.days(), hy.inclusive),
            (3.0, 2.0, 30, true)
        );
        assert!(hy.alp_below_uln.is_none());
        assert!(
            serde_yaml::from_str::<LabParams>("test: ALT\ntimes_uln: {at_least: 3, strict: true}").is_err()
        );
        assert!(serde_yaml::from_str::<LabParams>("test: {name: ALT}\nabove: 1").is_err());
        assert_eq!(refused("test: ALT").0, "");
        assert_eq!(refused("test: ALT\nabove: 1\ntimes_uln: {at_least: 3}").0, "times_uln");
        assert_eq!(refused("test: ALT\nhys_law: {}").0, "test");
        assert_eq!(refused("times_uln: {at_least: 3}").0, "test");
        assert_eq!(refused("test: ['']\nabove: 1").0, "test");
        assert_eq!(refused("test: K\nabove: 5\nbelow: 6").0, "below");
        assert_eq!(refused("test: ALT\ntimes_uln: {at_least: 3}\ninclusive: false").0, "inclusive");
        assert_eq!(refused("test: ALT\ntimes_uln: {at_least: 0}").0, "times_uln.at_least");
        assert_eq!(refused("test: ALT\ntimes_baseline: {at_least: 1}").0, "times_baseline.at_least");
        assert_eq!(refused("test: ALT\nctcae: {at_least: 5}").0, "ctcae.at_least");
        assert_eq!(refused("test: HGB\nctcae: {at_least: 4}").0, "ctcae.at_least");
        assert_eq!(refused("test: GGT\nctcae: {at_least: 1}").0, "ctcae.term");
        assert_eq!(refused("test: [ALT, AST]\nctcae: {at_least: 1}").0, "test");
        assert_eq!(refused("test: ALT\nctcae: {at_least: 1, assume_unit: U/L}").0, "ctcae.assume_unit");
        assert_eq!(refused("test: PLAT\nctcae: {at_least: 1, assume_unit: furlongs}").0, "ctcae.assume_unit");
        assert_eq!(refused("hys_law: {alp_below_uln: 0}").0, "hys_law.alp_below_uln");
        rule("test: GGT\nctcae: {at_least: 2, term: alkaline_phosphatase_increased}");
        rule("test: Platelets\nctcae: {at_least: 3, assume_unit: 10^9/L}");
    }

    #[test]
    fn a_test_is_read_under_any_of_its_names_with_one_baseline() {
        let named = |t: &str, v: f64| format!(r#"{{"test":"{t}","value":{v},"unit":"U/L","high":40}}"#);
        let data = [
            visit("BL", "2019-02-26", &[&named("SGPT", 20.0)]),
            DOSE.to_string(),
            visit("W2", "2019-03-12", &[&named("Alanine Aminotransferase", 45.0)]),
            visit("W4", "2019-03-26", &[&named("alt", 50.0)]),
        ];
        let f = one(&rule("test: ALT\ntimes_baseline: {at_least: 2}"), &data);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].evidence["baseline"]["test"], "SGPT");
        // The episode keeps the result's own spelling, so existing alerts keep their keys.
        assert_eq!(f[0].episode, "lab:Alanine Aminotransferase@2019-03-12");
        assert!(one(&rule("test: AST\nabove: 0"), &data).is_empty());
    }

    #[test]
    fn loads_through_the_rule_file_parser_with_positions() {
        let file = std::path::Path::new("lab.yaml");
        let yaml = "rules:
  - id: hys-law
    kind: lab
    hys_law: {alp_below_uln: 2}
    severity: critical
  - id: alt-grade-3
    kind: lab
    test: [ALT, SGPT]
    ctcae: {at_least: 3}
    severity: warning
";
        let rules = crate::rules::parse_rules(file, yaml).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].kind.name(), "lab");
        let bad =
            yaml.replace("{alp_below_uln: 2}", "{alt_ast_uln: -3}").replace("at_least: 3", "at_least: 6");
        let errors = crate::rules::parse_rules(file, &bad).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].line, 4, "{}", errors[0]);
        assert!(errors[0].message.contains("positive multiple"), "{}", errors[0]);
        assert_eq!(errors[1].line, 9, "{}", errors[1]);
        let unknown = yaml.replace("alp_below_uln", "alp_below");
        assert!(crate::rules::parse_rules(file, &unknown).is_err());
    }

    #[test]
    fn summaries_carry_study_days_not_dates() {
        let data = liver_history(&[visit(
            "W2",
            "2019-03-12",
            &[&alt(150.0, 40.0), r#"{"test":"BILI","value":50,"high":20}"#],
        )]);
        for r in ["hys_law: {}", "test: ALT\nctcae: {at_least: 1}", "test: ALT\ntimes_uln: {at_least: 3}"] {
            let f = one(&rule(r), &data);
            assert_eq!(f.len(), 1, "{r}");
            assert!(f[0].summary.contains("study day 15"), "{}", f[0].summary);
            assert!(!f[0].summary.contains("2019"), "{}", f[0].summary);
            assert!(!f[0].evidence.to_string().contains("2019-03-12"), "{}", f[0].evidence);
        }
    }

    // --- CDISC pilot (real data) -------------------------------------------------------

    /// lb.csv as one history per USUBJID (one record per visit).
    /// Only the tests the assertions read (ALT, AST, BILI, ALP) and ALB, a near-miss name
    /// that must not match, become records: reading all 43 tests through `Record::from_json`
    /// takes several seconds in a debug build, mostly in date-time parsing.
    fn cdisc_pilot() -> Vec<SubjectHistory> {
        {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cdiscpilot01/lb.csv");
            let mut visits: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
            let mut rows = 0;
            for r in crate::ingest::csv::rows(std::path::Path::new(path)).unwrap() {
                let f = |col: &str| r.get(col).map_or("", String::as_str);
                if f("LBSTRESN").is_empty() {
                    continue;
                }
                rows += 1;
                if !["ALT", "AST", "BILI", "ALP", "ALB"].contains(&f("LBTESTCD")) {
                    continue;
                }
                let number = |col: &str| (!f(col).is_empty()).then(|| f(col).parse::<f64>().unwrap());
                visits.entry((f("USUBJID").to_string(), f("VISIT").to_string())).or_default().push(json!({
                    "test": f("LBTESTCD"), "value": number("LBSTRESN"),
                    "unit": (!f("LBSTRESU").is_empty()).then(|| f("LBSTRESU")),
                    "low": number("LBSTNRLO"), "high": number("LBSTNRHI"), "time": f("LBDTC"),
                }));
            }
            assert_eq!(rows, 58_700, "lb.csv rows with a numeric result");
            let mut subjects: BTreeMap<String, Vec<Record>> = BTreeMap::new();
            for ((subject, visit), labs) in visits {
                let json = json!({"subject": subject, "visit": visit, "labs": labs}).to_string();
                subjects.entry(subject).or_default().push(Record::from_json(&json).unwrap());
            }
            subjects.into_iter().map(|(s, r)| SubjectHistory::new(SubjectId::parse(&s).unwrap(), r)).collect()
        }
    }

    /// (subjects with a finding, number of findings).
    fn run(pilot: &[SubjectHistory], yaml: &str) -> (BTreeSet<String>, usize) {
        let r = rule(yaml);
        let mut subjects = BTreeSet::new();
        let mut n = 0;
        for h in pilot {
            let f = r.evaluate(h, &ctx());
            if !f.is_empty() {
                subjects.insert(h.subject.to_string());
            }
            n += f.len();
        }
        (subjects, n)
    }

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cdisc_pilot_alt_and_ast_above_3x_uln() {
        let pilot = cdisc_pilot();
        assert_eq!(pilot.len(), 254);
        assert_eq!(run(&pilot, "test: alt\nabove: 0").1, 1814, "every ALT result, and no ALB or ALP");
        let (s, n) = run(&pilot, "test: ALT\ntimes_uln: {at_least: 3, strictly_above: true}");
        assert_eq!(s, set(&["01-705-1186", "01-705-1310", "01-708-1286"]));
        assert_eq!(n, 4, "ALT > 3×ULN: 4 records");
        assert_eq!(run(&pilot, "test: ALT\ntimes_uln: {at_least: 3}").0, s, "the same with >=");
        assert!(run(&pilot, "test: ALT\ntimes_uln: {at_least: 5, strictly_above: true}").0.is_empty());
        assert_eq!(run(&pilot, "test: ALT\ntimes_uln: {at_least: 2, strictly_above: true}").0.len(), 7);
        let (s, n) = run(&pilot, "test: [ALT, AST]\ntimes_uln: {at_least: 3, strictly_above: true}");
        assert_eq!(s, set(&["01-705-1186", "01-705-1292", "01-705-1310", "01-708-1286"]));
        assert_eq!(n, 4 + 7, "4 ALT and 7 AST records");
        let (s, n) = run(&pilot, "test: BILI\ntimes_uln: {at_least: 2, strictly_above: true}");
        assert_eq!((s, n), (set(&["01-705-1186", "01-709-1029"]), 6));
    }

    #[test]
    fn cdisc_pilot_hys_law() {
        let pilot = cdisc_pilot();
        let (s, n) = run(&pilot, "hys_law: {inclusive: true, within_days: 30}");
        assert_eq!((s, n), (set(&["01-705-1186"]), 1));
        // Its ALP is 5.8×ULN on those draws: with the cholestasis condition it is no case.
        assert!(run(&pilot, "hys_law: {alp_below_uln: 2}").0.is_empty());
        let h = pilot.iter().find(|h| h.subject.as_str() == "01-705-1186").unwrap();
        let f = rule("hys_law: {}").evaluate(h, &ctx());
        assert!(
            f[0].summary.contains("visit WEEK 2") && f[0].summary.contains("on the same draw"),
            "{}",
            f[0].summary
        );
    }
}

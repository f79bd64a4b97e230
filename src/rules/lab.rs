//! `lab`: one laboratory test against an absolute limit, a multiple of the sample's upper
//! limit of normal (ULN) or of the subject's baseline, or a CTCAE v5 grade (domain.md
//! §6.2); or the liver panel against Hy's law (domain.md §6.1).
//!
//! Episode = the sample (`lab:ALT@<time>`), level = its CTCAE grade (1 for a plain
//! threshold), so re-evaluating the same data raises nothing and a corrected, worse value
//! raises again. Hy's law is one episode per subject (`hys-law`, level 1).
//!
//! Every ×ULN comparison uses that sample's own ULN, and every comparison is made on the
//! decimal values (12 significant digits), so "exactly 3×ULN" is exactly 3×ULN.

use super::Kind;
use super::{study_day, study_day_text, Context, Finding};
use crate::model::{ClinicalTime, Lab, SubjectHistory};
use serde::{de, Deserialize, Deserializer};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt;

/// Test names `hys_law` reads, compared ignoring case.
const ALT_AST_NAMES: &[&str] = &["ALT", "SGPT", "AST", "SGOT"];
const BILIRUBIN_NAMES: &[&str] = &["BILI", "TBILI", "Bilirubin", "total bilirubin"];
const ALP_NAMES: &[&str] = &["ALP", "ALKPH"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabRule {
    /// The test: one name or a list of aliases (`[ALT, SGPT]`), compared with each result's
    /// `test` ignoring case. Required, except with `hys_law`, which names its own tests.
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
    /// The CTCAE v5 grade (domain.md §6.2) reaches a minimum.
    pub ctcae: Option<CtcaeCriterion>,
    /// Potential Hy's law case (use without `test`).
    pub hys_law: Option<HysLaw>,
}

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtcaeCriterion {
    /// The lowest grade that fires, 1 to 4.
    pub at_least: u8,
    /// The CTCAE term; default: named by `test` (ALT → alanine_aminotransferase_increased,
    /// HGB → anemia, K → hyperkalemia, …).
    pub term: Option<CtcaeTerm>,
    /// The unit to read a result in when it carries none, for terms graded on absolute
    /// values (counts, haemoglobin, potassium). Default: such results are not graded, as
    /// admiral's unit check would not grade them.
    pub assume_unit: Option<String>,
}

/// The CTCAE v5 laboratory terms vigil grades (admiral's ncictcaev5 criteria).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CtcaeTerm {
    AlanineAminotransferaseIncreased,
    AspartateAminotransferaseIncreased,
    BloodBilirubinIncreased,
    AlkalinePhosphataseIncreased,
    CreatinineIncreased,
    NeutrophilCountDecreased,
    PlateletCountDecreased,
    LymphocyteCountDecreased,
    WhiteBloodCellDecreased,
    Anemia,
    Hyperkalemia,
}

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
    #[serde(default = "default_within_days")]
    pub within_days: u32,
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
const fn default_within_days() -> u32 {
    30
}
const fn default_inclusive() -> bool {
    true
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

/// Which criteria block a rule uses (exactly one, see `check`).
enum Criterion<'a> {
    Absolute { above: Option<f64>, below: Option<f64>, inclusive: bool },
    TimesUln(&'a Multiple),
    TimesBaseline(&'a Multiple),
    Ctcae(&'a CtcaeCriterion, CtcaeTerm),
    HysLaw(&'a HysLaw),
}

impl LabRule {
    /// What serde cannot see.
    fn validate(&self) -> Result<(), (String, String)> {
        let blocks: Vec<&str> = [
            ("above/below", self.above.is_some() || self.below.is_some()),
            ("times_uln", self.times_uln.is_some()),
            ("times_baseline", self.times_baseline.is_some()),
            ("ctcae", self.ctcae.is_some()),
            ("hys_law", self.hys_law.is_some()),
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
        if self.hys_law.is_some() {
            if !self.test.is_empty() {
                return Err((
                    "test".into(),
                    "hys_law reads its own tests (ALT/SGPT/AST/SGOT, BILI/TBILI, ALP/ALKPH); remove `test`"
                        .into(),
                ));
            }
        } else if self.test.is_empty() {
            return Err(("test".into(), "missing: the test name or its aliases, e.g. [ALT, SGPT]".into()));
        }
        if self.test.iter().any(|t| t.trim().is_empty()) {
            return Err(("test".into(), "an empty test name matches nothing".into()));
        }
        for (key, v) in [("above", self.above), ("below", self.below)] {
            if v.is_some_and(|v| !v.is_finite()) {
                return Err((key.into(), "must be a number".into()));
            }
        }
        if let (Some(a), Some(b)) = (self.above, self.below) {
            if b >= a {
                return Err((
                    "below".into(),
                    format!("below: {b} is not under above: {a}; every value would fire"),
                ));
            }
        }
        if self.inclusive.is_some() && self.above.is_none() && self.below.is_none() {
            return Err((
                "inclusive".into(),
                "applies to above/below only (times_uln/times_baseline use strictly_above)".into(),
            ));
        }
        if let Some(m) = &self.times_uln {
            if !(m.at_least > 0.0 && m.at_least.is_finite()) {
                return Err(("times_uln.at_least".into(), "must be a positive multiple".into()));
            }
        }
        if let Some(m) = &self.times_baseline {
            if !(m.at_least > 1.0 && m.at_least.is_finite()) {
                return Err((
                    "times_baseline.at_least".into(),
                    "must be above 1: an unchanged value would fire otherwise".into(),
                ));
            }
        }
        if let Some(c) = &self.ctcae {
            let term = self.ctcae_term(c)?;
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
                if term.unit_scale(u).is_none() {
                    return Err((
                        "ctcae.assume_unit".into(),
                        format!("`{u}` is not a unit vigil converts for {} ({})", term.label(), term.units()),
                    ));
                }
            }
        }
        if let Some(hy) = &self.hys_law {
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
        Ok(())
    }

    /// The term named by `ctcae.term`, else by the test names (which must agree).
    fn ctcae_term(&self, c: &CtcaeCriterion) -> Result<CtcaeTerm, (String, String)> {
        if let Some(t) = c.term {
            return Ok(t);
        }
        let mut found: Option<CtcaeTerm> = None;
        for name in &self.test {
            match (found, CtcaeTerm::for_test(name)) {
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
                    self.test.join(", "),
                    CtcaeTerm::ALL.iter().map(|t| t.key()).collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }

    fn criterion(&self) -> Option<Criterion<'_>> {
        if let Some(hy) = &self.hys_law {
            return Some(Criterion::HysLaw(hy));
        }
        if let Some(m) = &self.times_uln {
            return Some(Criterion::TimesUln(m));
        }
        if let Some(m) = &self.times_baseline {
            return Some(Criterion::TimesBaseline(m));
        }
        if let Some(c) = &self.ctcae {
            return self.ctcae_term(c).ok().map(|t| Criterion::Ctcae(c, t));
        }
        if self.above.is_some() || self.below.is_some() {
            return Some(Criterion::Absolute {
                above: self.above,
                below: self.below,
                inclusive: self.inclusive.unwrap_or(true),
            });
        }
        None
    }
}

impl Kind for LabRule {
    const NAME: &'static str = "lab";
    type Params = Self;

    fn check(rule: Self) -> Result<Self, (String, String)> {
        rule.validate().map(|()| rule)
    }

    fn evaluate(&self, h: &SubjectHistory, ctx: &Context) -> Vec<Finding> {
        let Some(criterion) = self.criterion() else {
            return Vec::new();
        };
        if let Criterion::HysLaw(hy) = criterion {
            return hys_law(hy, h, ctx).into_iter().collect();
        }
        let mut out = Vec::new();
        for series in Series::of(h, self.test.as_slice()) {
            for (i, s) in series.samples.iter().enumerate() {
                let judged = match &criterion {
                    Criterion::Absolute { above, below, inclusive } => {
                        absolute(s.lab, *above, *below, *inclusive)
                    }
                    Criterion::TimesUln(m) => times_uln(s.lab, m),
                    Criterion::TimesBaseline(m) => {
                        series.baseline_for(i).and_then(|b| times_baseline(s.lab, b, m))
                    }
                    // Change-from-baseline grades apply after the baseline; the baseline
                    // itself and earlier results are graded on ULN/LLN alone.
                    Criterion::Ctcae(c, term) => term
                        .grade(s.lab, series.baseline_for(i).map(|b| b.lab), c.assume_unit.as_deref())
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

/// Why one sample fired, before it becomes a finding.
struct Judged {
    level: i64,
    /// "3.25×ULN", "CTCAE grade 2 alanine aminotransferase increased", …
    what: String,
    why: String,
    extra: Value,
}

fn absolute(lab: &Lab, above: Option<f64>, below: Option<f64>, inclusive: bool) -> Option<Judged> {
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

fn times_uln(lab: &Lab, m: &Multiple) -> Option<Judged> {
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

fn times_baseline(lab: &Lab, base: &Sample, m: &Multiple) -> Option<Judged> {
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
        level: j.level,
        severity: ctx.severity,
        title: None,
        summary: format!("{} {} at {}: {}.", s.lab.test.trim(), value_text(s.lab), when(h, s), j.what),
        why: j.why,
        evidence,
    }
}

/// One result with the time and visit the history gives it.
#[derive(Debug, Clone, Copy)]
struct Sample<'h> {
    time: Option<&'h ClinicalTime>,
    visit: Option<&'h str>,
    lab: &'h Lab,
}

/// The results of one test name for one subject, earliest first (untimed last), with its
/// baseline and where treatment-emergent results start. Baselines are per test name: a
/// rule listing ALT and AST must not compare an AST with the ALT baseline.
struct Series<'h> {
    samples: Vec<Sample<'h>>,
    /// The last result on or before the first dose, else the first result.
    baseline: Option<usize>,
    /// Results from this index on (and timed) are post-baseline: after the first dose, or,
    /// with no dose recorded, after the first result's draw.
    first_post: usize,
    /// Results before this index have a time.
    timed: usize,
}

impl<'h> Series<'h> {
    fn of(h: &'h SubjectHistory, names: &[impl AsRef<str>]) -> Vec<Series<'h>> {
        let mut by_name: BTreeMap<String, Vec<Sample<'h>>> = BTreeMap::new();
        for (time, visit, lab) in h.labs() {
            if names.iter().any(|n| n.as_ref().trim().eq_ignore_ascii_case(lab.test.trim())) {
                by_name.entry(lab.test.trim().to_lowercase()).or_default().push(Sample { time, visit, lab });
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

    fn baseline(&self) -> Option<&Sample<'h>> {
        self.baseline.and_then(|b| self.samples.get(b))
    }

    /// Timed and after the first dose (or the first draw), and not the baseline itself
    /// (which it is when no result precedes the dose).
    fn is_post_baseline(&self, i: usize) -> bool {
        i >= self.first_post && i < self.timed && self.baseline != Some(i)
    }

    /// The baseline to compare result `i` with: only post-baseline results have one.
    fn baseline_for(&self, i: usize) -> Option<&Sample<'h>> {
        self.baseline().filter(|_| self.is_post_baseline(i))
    }

    /// Post-baseline results; with a dose recorded, every timed result after it counts,
    /// even when no result preceded the dose.
    fn post_dose(&self) -> impl Iterator<Item = &Sample<'h>> {
        self.samples[self.first_post.min(self.timed)..self.timed].iter()
    }
}

fn same_time(a: &ClinicalTime, b: &ClinicalTime) -> bool {
    a.earliest() == b.earliest() && a.latest() == b.latest()
}

/// The sample's ULN, when it has a usable one.
fn uln(lab: &Lab) -> Option<f64> {
    lab.high.filter(|h| *h > 0.0 && h.is_finite())
}

/// Units agree, or one of them is not given (then the results are taken as comparable).
fn same_unit(a: &Lab, b: &Lab) -> bool {
    match (&a.unit, &b.unit) {
        (Some(x), Some(y)) => norm_unit(x) == norm_unit(y),
        _ => true,
    }
}

/// Rounds to 12 significant digits, so that a value and k × a limit compare as the decimal
/// numbers they are (0.1 × 3 is 0.30000000000000004 in binary); admiral does the same
/// with `signif`.
fn signif(x: f64) -> f64 {
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
fn reaches(value: f64, k: f64, reference: f64, inclusive: bool) -> bool {
    let (v, limit) = (signif(value), signif(k * reference));
    if inclusive {
        v >= limit
    } else {
        v > limit
    }
}

/// value ≤ limit (inclusive) or value < limit.
fn reaches_below(value: f64, limit: f64, inclusive: bool) -> bool {
    let (v, l) = (signif(value), signif(limit));
    if inclusive {
        v <= l
    } else {
        v < l
    }
}

impl CtcaeTerm {
    const ALL: [CtcaeTerm; 11] = [
        Self::AlanineAminotransferaseIncreased,
        Self::AspartateAminotransferaseIncreased,
        Self::BloodBilirubinIncreased,
        Self::AlkalinePhosphataseIncreased,
        Self::CreatinineIncreased,
        Self::NeutrophilCountDecreased,
        Self::PlateletCountDecreased,
        Self::LymphocyteCountDecreased,
        Self::WhiteBloodCellDecreased,
        Self::Anemia,
        Self::Hyperkalemia,
    ];

    /// The term for a test code or name (SDTM LBTESTCD codes and common names).
    fn for_test(name: &str) -> Option<Self> {
        let n = name.trim().to_ascii_uppercase();
        Some(match n.as_str() {
            "ALT" | "SGPT" | "ALAT" | "ALANINE AMINOTRANSFERASE" => Self::AlanineAminotransferaseIncreased,
            "AST" | "SGOT" | "ASAT" | "ASPARTATE AMINOTRANSFERASE" => {
                Self::AspartateAminotransferaseIncreased
            }
            "BILI" | "TBILI" | "BILIRUBIN" | "TOTAL BILIRUBIN" => Self::BloodBilirubinIncreased,
            "ALP" | "ALKPH" | "ALKALINE PHOSPHATASE" => Self::AlkalinePhosphataseIncreased,
            "CREAT" | "CREATININE" => Self::CreatinineIncreased,
            "NEUT" | "ANC" | "NEUTROPHILS" => Self::NeutrophilCountDecreased,
            "PLAT" | "PLT" | "PLATELETS" => Self::PlateletCountDecreased,
            "LYM" | "LYMPH" | "LYMPHOCYTES" => Self::LymphocyteCountDecreased,
            "WBC" | "LEUKOCYTES" => Self::WhiteBloodCellDecreased,
            "HGB" | "HB" | "HEMOGLOBIN" | "HAEMOGLOBIN" => Self::Anemia,
            "K" | "POTASSIUM" => Self::Hyperkalemia,
            _ => return None,
        })
    }

    fn key(self) -> &'static str {
        match self {
            Self::AlanineAminotransferaseIncreased => "alanine_aminotransferase_increased",
            Self::AspartateAminotransferaseIncreased => "aspartate_aminotransferase_increased",
            Self::BloodBilirubinIncreased => "blood_bilirubin_increased",
            Self::AlkalinePhosphataseIncreased => "alkaline_phosphatase_increased",
            Self::CreatinineIncreased => "creatinine_increased",
            Self::NeutrophilCountDecreased => "neutrophil_count_decreased",
            Self::PlateletCountDecreased => "platelet_count_decreased",
            Self::LymphocyteCountDecreased => "lymphocyte_count_decreased",
            Self::WhiteBloodCellDecreased => "white_blood_cell_decreased",
            Self::Anemia => "anemia",
            Self::Hyperkalemia => "hyperkalemia",
        }
    }

    fn label(self) -> String {
        self.key().replace('_', " ")
    }

    /// Anemia grade 4 is clinical ("life-threatening"), not a lab value.
    fn max_grade(self) -> u8 {
        if self == Self::Anemia {
            3
        } else {
            4
        }
    }

    /// Graded on absolute values, so the unit matters.
    fn absolute(self) -> bool {
        matches!(
            self,
            Self::NeutrophilCountDecreased
                | Self::PlateletCountDecreased
                | Self::LymphocyteCountDecreased
                | Self::WhiteBloodCellDecreased
                | Self::Anemia
                | Self::Hyperkalemia
        )
    }

    fn units(self) -> &'static str {
        match self {
            Self::Anemia => "g/L, g/dL or mmol/L",
            Self::Hyperkalemia => "mmol/L or mEq/L",
            _ => "10^9/L (GI/L, 10^3/uL) or /uL (/mm3)",
        }
    }

    /// How to read a value in this unit: (factor to the table's unit, thresholds in
    /// mmol/L instead of g/L). None = a unit vigil does not convert.
    fn unit_scale(self, unit: &str) -> Option<(f64, bool)> {
        let u = norm_unit(unit);
        match self {
            Self::Anemia => match u.as_str() {
                "g/l" => Some((1.0, false)),
                "g/dl" => Some((10.0, false)),
                // CTCAE v5 gives its own mmol/L limits for haemoglobin (6.2 and 4.9).
                "mmol/l" => Some((1.0, true)),
                _ => None,
            },
            Self::Hyperkalemia => matches!(u.as_str(), "mmol/l" | "meq/l").then_some((1.0, false)),
            _ if self.absolute() => match u.as_str() {
                "10^9/l" | "10e9/l" | "10*9/l" | "x10^9/l" | "x10e9/l" | "gi/l" | "10^3/ul" | "10e3/ul"
                | "10*3/ul" | "x10^3/ul" | "k/ul" | "/nl" | "10^3/mm3" => Some((1.0, false)),
                "/ul" | "/mm3" | "cells/ul" | "cells/mm3" | "10^6/l" => Some((0.001, false)),
                _ => None,
            },
            _ => None,
        }
    }

    /// The grade of one result (admiral's algorithm: from the most severe grade down, the
    /// first match wins; grade 0 within normal limits; None when a value the table needs —
    /// ULN, LLN, baseline, a known unit — is missing).
    fn grade(self, lab: &Lab, baseline: Option<&Lab>, assume_unit: Option<&str>) -> Option<Judged> {
        let v = lab.value;
        let (level, why) = match self {
            Self::AlanineAminotransferaseIncreased
            | Self::AspartateAminotransferaseIncreased
            | Self::BloodBilirubinIncreased
            | Self::AlkalinePhosphataseIncreased => {
                let limit = uln(lab)?;
                // (grade, multiple, inclusive) for a normal and for a high baseline.
                let (normal, high): (Bands, Bands) = match self {
                    Self::BloodBilirubinIncreased => (
                        &[(4, 10.0, false), (3, 3.0, false), (2, 1.5, false), (1, 1.0, false)],
                        &[(4, 10.0, false), (3, 3.0, false), (2, 1.5, false), (1, 1.0, false)],
                    ),
                    Self::AlkalinePhosphataseIncreased => (
                        &[(4, 20.0, false), (3, 5.0, false), (2, 2.5, false), (1, 1.0, false)],
                        &[(4, 20.0, false), (3, 5.0, false), (2, 2.5, false), (1, 2.0, true)],
                    ),
                    _ => (
                        &[(4, 20.0, false), (3, 5.0, false), (2, 3.0, false), (1, 1.0, false)],
                        &[(4, 20.0, false), (3, 5.0, false), (2, 3.0, false), (1, 1.5, true)],
                    ),
                };
                // Admiral's BNRIND: a baseline above its own ULN is "abnormal"; unknown = normal.
                let abnormal = baseline.filter(|b| uln(b).is_some_and(|bu| reaches(b.value, 1.0, bu, false)));
                match abnormal {
                    Some(b) if !same_unit(lab, b) || b.value <= 0.0 => return None,
                    Some(b) => bands_up(v, b.value, "baseline", high, "baseline above ULN"),
                    None => bands_up(v, limit, "ULN", normal, "baseline within normal limits"),
                }
            }
            Self::CreatinineIncreased => {
                let uln = uln(lab);
                let base = baseline.filter(|b| b.value > 0.0 && same_unit(lab, b)).map(|b| b.value);
                let over = |k: f64, r: Option<f64>| r.is_some_and(|r| reaches(v, k, r, false));
                let both = |k: f64| {
                    if over(k, uln) {
                        uln.map(|u| format!("{} > {}×ULN ({})", num(v), num(k), num(k * u)))
                    } else if over(k, base) {
                        base.map(|b| format!("{} > {}×baseline ({})", num(v), num(k), num(k * b)))
                    } else {
                        None
                    }
                };
                if over(6.0, uln) {
                    (4, format!("{} > 6×ULN", num(v)))
                } else if let Some(w) = both(3.0) {
                    (3, w)
                } else if let Some(w) = both(1.5) {
                    (2, w)
                } else {
                    let u = uln?;
                    if reaches(v, 1.0, u, false) {
                        (1, format!("{} > ULN ({})", num(v), num(u)))
                    } else {
                        (0, "within normal limits".to_string())
                    }
                }
            }
            Self::Hyperkalemia => {
                self.unit_scale(lab.unit.as_deref().or(assume_unit)?)?;
                let band =
                    [(4, 7.0), (3, 6.0), (2, 5.5)].into_iter().find(|(_, l)| reaches(v, 1.0, *l, false));
                match band {
                    Some((g, l)) => (g, format!("{} > {} mmol/L", num(v), num(l))),
                    None => {
                        let u = uln(lab)?;
                        if reaches(v, 1.0, u, false) {
                            (1, format!("{} > ULN ({})", num(v), num(u)))
                        } else {
                            (0, "within normal limits".to_string())
                        }
                    }
                }
            }
            _ => {
                // Decreased counts and haemoglobin: fixed limits in the table's unit, then LLN.
                let (factor, hb_mmol) = self.unit_scale(lab.unit.as_deref().or(assume_unit)?)?;
                let (limits, unit): (&[(u8, f64)], &str) = match self {
                    Self::NeutrophilCountDecreased => (&[(4, 0.5), (3, 1.0), (2, 1.5)], "10^9/L"),
                    Self::PlateletCountDecreased => (&[(4, 25.0), (3, 50.0), (2, 75.0)], "10^9/L"),
                    Self::LymphocyteCountDecreased => (&[(4, 0.2), (3, 0.5), (2, 0.8)], "10^9/L"),
                    Self::WhiteBloodCellDecreased => (&[(4, 1.0), (3, 2.0), (2, 3.0)], "10^9/L"),
                    _ if hb_mmol => (&[(3, 4.9), (2, 6.2)], "mmol/L"),
                    _ => (&[(3, 80.0), (2, 100.0)], "g/L"),
                };
                let x = signif(v * factor);
                match limits.iter().find(|(_, l)| x < signif(*l)) {
                    Some((g, l)) => (*g, format!("{} {unit} < {} {unit}", num(x), num(*l))),
                    None => {
                        let lln = lab.low.map(|l| signif(l * factor))?;
                        if x < lln {
                            (1, format!("{} < LLN ({})", num(x), num(lln)))
                        } else {
                            (0, "within normal limits".to_string())
                        }
                    }
                }
            }
        };
        Some(Judged {
            level: i64::from(level),
            what: format!("CTCAE grade {level} {}", self.label()),
            why,
            extra: json!({"ctcae": {"version": "5.0", "term": self.key(), "grade": level}}),
        })
    }
}

/// Grade bands, most severe first: (grade, multiple, inclusive).
type Bands = &'static [(u8, f64, bool)];

/// The first band (most severe first) that `v` reaches as a multiple of `reference`.
fn bands_up(v: f64, reference: f64, name: &str, bands: Bands, note: &str) -> (u8, String) {
    for (g, k, inclusive) in bands {
        if reaches(v, *k, reference, *inclusive) {
            let op = if *inclusive { ">=" } else { ">" };
            let k_text = if *k == 1.0 { name.to_string() } else { format!("{}×{name}", num(*k)) };
            return (*g, format!("{} {op} {k_text} ({}), {note}", num(v), num(k * reference)));
        }
    }
    (0, format!("{} within {name} limits", num(v)))
}

fn norm_unit(u: &str) -> String {
    u.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            'µ' | 'μ' => 'u',
            '×' => 'x',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// One qualifying pair of a Hy's law case.
struct HyPair<'a> {
    transaminase: &'a Sample<'a>,
    bilirubin: &'a Sample<'a>,
    days_after: i64,
    alp: Option<&'a Sample<'a>>,
}

fn hys_law(hy: &HysLaw, h: &SubjectHistory, ctx: &Context) -> Option<Finding> {
    let at_series = Series::of(h, ALT_AST_NAMES);
    let tb_series = Series::of(h, BILIRUBIN_NAMES);
    let alp_series = Series::of(h, ALP_NAMES);
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
            let min_gap = (tb.earliest().date_naive() - ta.latest().date_naive()).num_days();
            let max_gap = (tb.latest().date_naive() - ta.earliest().date_naive()).num_days();
            if max_gap >= 0 && min_gap <= i64::from(hy.within_days) {
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
        hy.within_days
    );
    if let Some(k) = hy.alp_below_uln {
        why.push_str(&format!("; ALP < {}×ULN on the ALT/AST draw", num(k)));
        if first.alp.is_none() {
            why.push_str(" (ALP not measured on that draw: cholestasis not excluded)");
        }
    }
    Some(Finding {
        episode: "hys-law".into(),
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
                          "within_days": hy.within_days, "inclusive": hy.inclusive,
                          "alp_below_uln": hy.alp_below_uln},
        }),
    })
}

/// A sample for the evidence: values, limits, visit and study day (no calendar date).
fn sample_json(h: &SubjectHistory, s: &Sample) -> Value {
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
fn when(h: &SubjectHistory, s: &Sample) -> String {
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

fn value_text(lab: &Lab) -> String {
    match &lab.unit {
        Some(u) => format!("{} {u}", num(lab.value)),
        None => num(lab.value),
    }
}

/// A number as a reader writes it: up to 4 decimals, no trailing zeros.
fn num(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    s.to_string()
}

fn ratio_text(r: f64) -> String {
    format!("{r:.2}")
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::model::{Record, SubjectId};
    use crate::rules::Severity;
    use std::collections::BTreeSet;
    use std::sync::OnceLock;

    fn ctx() -> Context<'static> {
        Context { severity: Severity::Warning, as_of: chrono::Utc::now(), schedule: &[] }
    }

    fn rule(yaml: &str) -> LabRule {
        let r: LabRule = serde_yaml::from_str(yaml).unwrap();
        r.validate().unwrap();
        r
    }

    fn refused(yaml: &str) -> (String, String) {
        let r: LabRule = serde_yaml::from_str(yaml).unwrap();
        r.validate().unwrap_err()
    }

    fn history(json: &[String]) -> SubjectHistory {
        SubjectHistory::new(
            SubjectId::parse("KS-101").unwrap(),
            json.iter().map(|j| Record::from_json(j).unwrap()).collect(),
        )
    }

    const DOSE: &str = r#"{"subject":"KS-101","visit":"D1","doses":[{"start":"2019-02-26T09:10:00+01:00"}]}"#;

    /// A visit record with labs (JSON objects without the braces' surroundings).
    fn visit(label: &str, date: &str, labs: &[&str]) -> String {
        format!(r#"{{"subject":"KS-101","visit":"{label}","date":"{date}","labs":[{}]}}"#, labs.join(","))
    }

    fn alt(value: f64, high: f64) -> String {
        format!(r#"{{"test":"ALT","value":{value},"unit":"U/L","high":{high}}}"#)
    }

    fn one(r: &LabRule, records: &[String]) -> Vec<Finding> {
        r.evaluate(&history(records), &ctx())
    }

    #[test]
    fn yaml_shapes_and_refusals() {
        assert_eq!(rule("test: ALT\ntimes_uln: {at_least: 3}").test, ["ALT"]);
        assert_eq!(rule("test: [ALT, SGPT]\nabove: 120").test, ["ALT", "SGPT"]);
        let hy = rule("hys_law: {}").hys_law.unwrap();
        assert_eq!((hy.alt_ast_uln, hy.bilirubin_uln, hy.within_days, hy.inclusive), (3.0, 2.0, 30, true));
        assert!(hy.alp_below_uln.is_none());
        assert!(serde_yaml::from_str::<LabRule>("test: ALT\ntimes_uln: {at_least: 3, strict: true}").is_err());
        assert!(serde_yaml::from_str::<LabRule>("test: {name: ALT}\nabove: 1").is_err());
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

    fn grade_of(test: &str, lab: &str, extra: &[String]) -> Option<i64> {
        let mut data: Vec<String> = extra.to_vec();
        data.push(visit("W8", "2019-04-23", &[lab]));
        let r = rule(&format!("test: {test}\nctcae: {{at_least: 1}}"));
        let f = one(&r, &data);
        f.iter().find(|f| f.episode.ends_with("2019-04-23")).map(|f| f.level)
    }

    #[test]
    fn alt_exactly_3x_uln_is_ctcae_grade_1_the_g2_band_is_above_3() {
        let g = |v: f64| grade_of("ALT", &alt(v, 40.0), &[]);
        assert_eq!(g(40.0), None, "= ULN is grade 0");
        assert_eq!(g(40.1), Some(1));
        assert_eq!(g(120.0), Some(1), "exactly 3.0×ULN");
        assert_eq!(g(120.1), Some(2));
        assert_eq!(g(200.0), Some(2), "exactly 5.0×ULN");
        assert_eq!(g(200.1), Some(3));
        assert_eq!(g(800.0), Some(3), "exactly 20×ULN");
        assert_eq!(g(800.1), Some(4));
        let f = one(
            &rule("test: ALT\nctcae: {at_least: 2}"),
            &[DOSE.into(), visit("W2", "2019-03-12", &[&alt(130.0, 40.0)])],
        );
        assert_eq!((f[0].episode.as_str(), f[0].level), ("lab:ALT@2019-03-12", 2));
        assert_eq!(
            f[0].summary,
            "ALT 130 U/L at visit W2, study day 15: CTCAE grade 2 alanine aminotransferase increased."
        );
        assert_eq!(f[0].why, "grade 2 >= 2: 130 > 3×ULN (120), baseline within normal limits");
        assert_eq!(f[0].evidence["ctcae"]["grade"], 2);
        assert!(one(
            &rule("test: ALT\nctcae: {at_least: 3}"),
            &[visit("W2", "2019-03-12", &[&alt(130.0, 40.0)])]
        )
        .is_empty());
    }

    #[test]
    fn abnormal_baseline_grades_against_baseline() {
        // Baseline (last before the first dose) 60 U/L with ULN 40: above normal.
        let base = [visit("SCR", "2019-02-20", &[&alt(60.0, 40.0)]), DOSE.to_string()];
        let g = |v: f64| grade_of("ALT", &alt(v, 40.0), &base);
        assert_eq!(g(89.9), None);
        assert_eq!(g(90.0), Some(1), "1.5×baseline is grade 1 (inclusive)");
        assert_eq!(g(180.0), Some(1), "exactly 3.0×baseline");
        assert_eq!(g(180.1), Some(2));
        assert_eq!(g(300.1), Some(3));
        assert_eq!(g(1200.1), Some(4));
        // Bilirubin with a normal baseline: > 1.5×ULN is grade 2, 1.5× itself grade 1.
        let bili = |v: f64| format!(r#"{{"test":"BILI","value":{v},"unit":"umol/L","high":20}}"#);
        assert_eq!(grade_of("BILI", &bili(30.0), &[]), Some(1));
        assert_eq!(grade_of("BILI", &bili(30.1), &[]), Some(2));
        assert_eq!(grade_of("BILI", &bili(200.1), &[]), Some(4));
        // ALP: 2.5×ULN is grade 1, above it grade 2.
        let alp = |v: f64| format!(r#"{{"test":"ALP","value":{v},"unit":"U/L","high":100}}"#);
        assert_eq!(grade_of("ALP", &alp(250.0), &[]), Some(1));
        assert_eq!(grade_of("ALP", &alp(250.1), &[]), Some(2));
    }

    #[test]
    fn creatinine_reaches_grades_2_and_3_through_baseline() {
        let cr = |v: f64| format!(r#"{{"test":"CREAT","value":{v},"unit":"umol/L","high":100}}"#);
        let base = [visit("SCR", "2019-02-20", &[&cr(50.0)]), DOSE.to_string()];
        assert_eq!(grade_of("CREAT", &cr(75.0), &base), None, "1.5×baseline exactly is not above it");
        assert_eq!(grade_of("CREAT", &cr(76.0), &base), Some(2), "below ULN, above 1.5×baseline");
        assert_eq!(grade_of("CREAT", &cr(151.0), &base), Some(3), "above 3×baseline");
        assert_eq!(grade_of("CREAT", &cr(601.0), &base), Some(4));
        assert_eq!(grade_of("CREAT", &cr(101.0), &[]), Some(1));
    }

    #[test]
    fn decreased_counts_haemoglobin_and_potassium_in_their_units() {
        let count =
            |t: &str, v: f64, u: &str| format!(r#"{{"test":"{t}","value":{v},"unit":"{u}","low":2.0}}"#);
        assert_eq!(grade_of("NEUT", &count("NEUT", 1.5, "10^9/L"), &[]), Some(1));
        assert_eq!(grade_of("NEUT", &count("NEUT", 1.49, "10^9/L"), &[]), Some(2));
        assert_eq!(grade_of("NEUT", &count("NEUT", 1.0, "GI/L"), &[]), Some(2));
        assert_eq!(grade_of("NEUT", &count("NEUT", 0.99, "10^9/L"), &[]), Some(3));
        assert_eq!(grade_of("NEUT", &count("NEUT", 400.0, "/uL"), &[]), Some(4), "400/uL = 0.4×10^9/L");
        assert_eq!(grade_of("NEUT", &count("NEUT", 2.5, "10^9/L"), &[]), None);
        assert_eq!(grade_of("NEUT", &count("NEUT", 0.4, "furlongs"), &[]), None, "unknown unit: not graded");
        let plat = r#"{"test":"PLAT","value":49,"low":150}"#;
        assert_eq!(grade_of("PLAT", plat, &[]), None, "no unit: not graded");
        let r = rule("test: PLAT\nctcae: {at_least: 3, assume_unit: 10^9/L}");
        assert_eq!(one(&r, &[visit("W8", "2019-04-23", &[plat])])[0].level, 3);
        let hb = |v: f64, u: &str| format!(r#"{{"test":"HGB","value":{v},"unit":"{u}","low":120}}"#);
        assert_eq!(grade_of("HGB", &hb(8.0, "g/dL"), &[]), Some(2), "80 g/L is not below 80");
        assert_eq!(grade_of("HGB", &hb(7.9, "g/dL"), &[]), Some(3));
        assert_eq!(grade_of("HGB", &hb(100.0, "g/L"), &[]), Some(1));
        let hb_mmol = |v: f64| format!(r#"{{"test":"HGB","value":{v},"unit":"mmol/L","low":7.5}}"#);
        assert_eq!(grade_of("HGB", &hb_mmol(4.8), &[]), Some(3));
        assert_eq!(grade_of("HGB", &hb_mmol(6.2), &[]), Some(1));
        let k = |v: f64| format!(r#"{{"test":"K","value":{v},"unit":"mmol/L","high":5.0}}"#);
        assert_eq!(grade_of("K", &k(5.0), &[]), None);
        assert_eq!(grade_of("K", &k(5.5), &[]), Some(1));
        assert_eq!(grade_of("K", &k(6.0), &[]), Some(2));
        assert_eq!(grade_of("K", &k(7.0), &[]), Some(3));
        assert_eq!(grade_of("K", &k(7.1), &[]), Some(4));
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

    /// Liver tests drawn together at an unscheduled visit on `day`.
    fn liver(day: &str, alt: f64, bili: f64) -> String {
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

    fn liver_history(extra: &[String]) -> Vec<String> {
        let mut v = vec![liver("2019-02-20", 20.0, 10.0), DOSE.to_string()];
        v.extend_from_slice(extra);
        v
    }

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

    /// Splits one CSV line: commas inside double quotes are data, `""` is a quote.
    pub(in crate::rules) fn csv_fields(line: &str) -> Vec<String> {
        if !line.contains('"') {
            return line.split(',').map(str::to_string).collect();
        }
        let mut out = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' if quoted && chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                '"' => quoted = !quoted,
                ',' if !quoted => out.push(std::mem::take(&mut field)),
                c => field.push(c),
            }
        }
        out.push(field);
        out
    }

    #[test]
    fn csv_fields_respect_quotes() {
        assert_eq!(csv_fields(r#"a,"b, c",,"say ""hi""""#), ["a", "b, c", "", r#"say "hi""#]);
        assert_eq!(csv_fields(""), [""]);
    }

    /// lb.csv as one history per USUBJID (one record per visit), parsed once per test run.
    /// Only the tests the assertions read (ALT, AST, BILI, ALP) and ALB, a near-miss name
    /// that must not match, become records: reading all 43 tests through `Record::from_json`
    /// takes several seconds in a debug build, mostly in date-time parsing.
    fn cdisc_pilot() -> &'static [SubjectHistory] {
        static HISTORIES: OnceLock<Vec<SubjectHistory>> = OnceLock::new();
        HISTORIES.get_or_init(|| {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cdiscpilot01/lb.csv");
            let text = std::fs::read_to_string(path).unwrap();
            let mut lines = text.lines();
            let header = csv_fields(lines.next().unwrap());
            let col = |name: &str| header.iter().position(|h| h == name).unwrap();
            let (id, test, value, unit) = (col("USUBJID"), col("LBTESTCD"), col("LBSTRESN"), col("LBSTRESU"));
            let (low, high, time, visit) = (col("LBSTNRLO"), col("LBSTNRHI"), col("LBDTC"), col("VISIT"));
            let mut visits: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
            let mut rows = 0;
            for line in lines {
                let f = csv_fields(line);
                if f[value].is_empty() {
                    continue;
                }
                rows += 1;
                if !["ALT", "AST", "BILI", "ALP", "ALB"].contains(&f[test].as_str()) {
                    continue;
                }
                let number = |i: usize| (!f[i].is_empty()).then(|| f[i].parse::<f64>().unwrap());
                visits.entry((f[id].clone(), f[visit].clone())).or_default().push(json!({
                    "test": f[test], "value": number(value), "unit": (!f[unit].is_empty()).then(|| &f[unit]),
                    "low": number(low), "high": number(high), "time": f[time],
                }));
            }
            assert_eq!(rows, 58_700, "lb.csv rows with a numeric result");
            let mut subjects: BTreeMap<String, Vec<Record>> = BTreeMap::new();
            for ((subject, visit), labs) in visits {
                let json = json!({"subject": subject, "visit": visit, "labs": labs}).to_string();
                subjects.entry(subject).or_default().push(Record::from_json(&json).unwrap());
            }
            subjects.into_iter().map(|(s, r)| SubjectHistory::new(SubjectId::parse(&s).unwrap(), r)).collect()
        })
    }

    /// (subjects with a finding, number of findings).
    fn run(yaml: &str) -> (BTreeSet<String>, usize) {
        let r = rule(yaml);
        let mut subjects = BTreeSet::new();
        let mut n = 0;
        for h in cdisc_pilot() {
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
        assert_eq!(cdisc_pilot().len(), 254);
        assert_eq!(run("test: alt\nabove: 0").1, 1814, "every ALT result, and no ALB or ALP");
        let (s, n) = run("test: ALT\ntimes_uln: {at_least: 3, strictly_above: true}");
        assert_eq!(s, set(&["01-705-1186", "01-705-1310", "01-708-1286"]));
        assert_eq!(n, 4, "ALT > 3×ULN: 4 records");
        assert_eq!(run("test: ALT\ntimes_uln: {at_least: 3}").0, s, "the same with >=");
        assert!(run("test: ALT\ntimes_uln: {at_least: 5, strictly_above: true}").0.is_empty());
        assert_eq!(run("test: ALT\ntimes_uln: {at_least: 2, strictly_above: true}").0.len(), 7);
        let (s, n) = run("test: [ALT, AST]\ntimes_uln: {at_least: 3, strictly_above: true}");
        assert_eq!(s, set(&["01-705-1186", "01-705-1292", "01-705-1310", "01-708-1286"]));
        assert_eq!(n, 4 + 7, "4 ALT and 7 AST records");
        let (s, n) = run("test: BILI\ntimes_uln: {at_least: 2, strictly_above: true}");
        assert_eq!((s, n), (set(&["01-705-1186", "01-709-1029"]), 6));
    }

    #[test]
    fn cdisc_pilot_hys_law() {
        let (s, n) = run("hys_law: {inclusive: true, within_days: 30}");
        assert_eq!((s, n), (set(&["01-705-1186"]), 1));
        // Its ALP is 5.8×ULN on those draws: with the cholestasis condition it is no case.
        assert!(run("hys_law: {alp_below_uln: 2}").0.is_empty());
        let h = cdisc_pilot().iter().find(|h| h.subject.as_str() == "01-705-1186").unwrap();
        let f = rule("hys_law: {}").evaluate(h, &ctx());
        assert!(
            f[0].summary.contains("visit WEEK 2") && f[0].summary.contains("on the same draw"),
            "{}",
            f[0].summary
        );
    }
}
